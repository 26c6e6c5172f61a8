"""Shared fixtures: tiny random-weight checkpoints of every adapter family, each built on first
use through the real ``mm-align tiny`` command, and small real images.

Collection imports nothing heavy (no torch, no transformers, no family): a test that takes a
``family`` argument without parametrising it runs once per registered family, and the
registry is read only when such a test is collected."""

from __future__ import annotations

import os

# Set before anything imports transformers / huggingface_hub, which read these at import time:
# the test session must never reach for the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import COLLECTED, SAMPLE_AUDIO, families

if TYPE_CHECKING:  # torch and PIL load with the first test that needs them, not at collection
    from PIL import Image
    from torch import nn

CAPTIONS = (
    "An astronaut in a white suit.",
    "A cat looks at the camera.",
    "A cup of coffee on a saucer, seen from above.",
    "A rocket stands on the launch pad.",
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test asking for ``family`` (and not parametrising it itself) runs for every family."""
    if "family" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "family" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    metafunc.parametrize("family", families())


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.gpu`` tests skip without CUDA (torch is imported only for them)."""
    if item.get_closest_marker("gpu"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep every collected test, before ``-m``/``-k`` deselect any: ``test_suite.py`` checks
    that the fast loop reaches every module."""
    config.stash[COLLECTED] = list(items)


class TinyCheckpoints(Mapping[str, Path]):
    """family -> folder of its tiny checkpoint (random weights, seed 0), built on first lookup,
    so a test of one family does not pay for every family's checkpoint."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[str, Path] = {}

    def __getitem__(self, family: str) -> Path:
        if family not in self._built:
            from mm_align.cli import main

            if family not in (*families(), *families("audio")):
                raise KeyError(family)
            assert main(["tiny", family, str(self._root / family), "--seed", "0"]) == 0
            self._built[family] = self._root / family
        return self._built[family]

    def __iter__(self) -> Iterator[str]:
        return iter(families())

    def __len__(self) -> int:
        return len(families())


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Path]:
    """family -> folder of its tiny checkpoint (random weights, seed 0), built on first use."""
    return TinyCheckpoints(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def load_tiny(tiny_checkpoints: Mapping[str, Path]) -> Callable[..., object]:
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
    from PIL import Image
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


@pytest.fixture(scope="session")
def clips() -> list[tuple[object, str]]:
    """Four spoken clips of the bundled set (data/sample_audio, synthetic speech of 2.6 to 3.1 s,
    of four codecs), decoded at 16 kHz, with their transcripts."""
    import json

    from mm_align.data.audio import AudioLimits, load_waveform

    rows = [json.loads(line) for line in (SAMPLE_AUDIO / "metadata.jsonl").read_text().splitlines()]
    chosen = [row for row in rows if row["id"] in ("cat", "coffee", "rocket", "numbers")]
    return [(load_waveform(SAMPLE_AUDIO / row["audio"], AudioLimits(16_000))[0], row["text"]) for row in chosen]


def _hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.fixture(scope="session")
def hook_count() -> Callable[[nn.Module], int]:
    """``hook_count(module)``: forward (pre-)hooks registered on ``module`` and its children."""
    return _hook_count
