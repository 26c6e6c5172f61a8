"""Shared fixtures: tiny random-weight checkpoints of every adapter family, built once per
session through the real ``mm-align tiny`` command, and small real images."""

from __future__ import annotations

import os

# Set before anything imports transformers / huggingface_hub, which read these at import time:
# the test session must never reach for the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from torch import nn


def _families() -> tuple[str, ...]:
    # From the registry, never a hard-coded list: a new family is tested by every family test.
    from mm_align.adapters import supported_families

    return supported_families()


FAMILIES = _families()

CAPTIONS = (
    "An astronaut in a white suit.",
    "A cat looks at the camera.",
    "A cup of coffee on a saucer, seen from above.",
    "A rocket stands on the launch pad.",
)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> folder of its tiny checkpoint (random weights, seed 0)."""
    from mm_align.cli import main

    root = tmp_path_factory.mktemp("tiny")
    paths = {}
    for family in FAMILIES:
        paths[family] = root / family
        assert main(["tiny", family, str(paths[family]), "--seed", "0"]) == 0
    return paths


@pytest.fixture(scope="session")
def load_tiny(tiny_checkpoints: dict[str, Path]) -> Callable[..., object]:
    """``load_tiny(family, **load_vlm_options)``: the adapter of a tiny checkpoint, cached per
    set of options (tests must not change it)."""
    from mm_align import load_vlm

    cache: dict[tuple, object] = {}

    def load(family: str, **options: object) -> object:
        key = (family, tuple(sorted(options.items(), key=lambda item: item[0])))
        if key not in cache:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="RANDOM WEIGHTS")
                cache[key] = load_vlm(tiny_checkpoints[family], **options)
        return cache[key]

    return load


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    """Four real photos (skimage) of different aspect ratios (one portrait), shrunk for speed."""
    from skimage import data

    out = []
    photos = ((data.astronaut(), (112, 112)), (data.chelsea(), (150, 100)), (data.coffee(), (120, 80)),
              (data.rocket(), (64, 96)))
    for array, size in photos:
        out.append(Image.fromarray(array).resize(size, Image.Resampling.BICUBIC))
    return out


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return list(CAPTIONS)


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.fixture(scope="session")
def hook_count() -> Callable[[nn.Module], int]:
    """``hook_count(module)``: forward (pre-)hooks registered on ``module`` and its children."""
    return _hook_count
