"""Helpers shared by the tests: the tolerance policy, run-folder readers, the registered
families, and a fresh-interpreter import probe.

Everything here is light to import (no torch, no transformers): conftest imports it at
collection, so ``pytest tests/test_metrics_cka.py`` does not load every model family.

Tolerance policy: every comparison of floats in the tests uses one of the named relative
tolerances below, chosen by *what differs* between the two numbers, never by what happens to
pass. A test that needs another one says why next to it.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

COLLECTED = pytest.StashKey[list[pytest.Item]]()
"""Every test collected in this session, before deselection (set by conftest)."""

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
"""The bundled 15-sample image-caption data set."""
SAMPLE_AUDIO = ROOT / "data" / "sample_audio"
"""The bundled 8 spoken clips with transcripts (synthetic speech, four codecs)."""

EXACT = 1e-12
"""One float64 formula computed two ways (ours vs an independent float64 reference, a
closed form vs a loop): only the summation order differs, so agreement is to a few ulps of
the quantities involved. The pinned demo and diff-erank summaries hold to this in the
environment they were written in (:func:`pin_tolerance`)."""

FLOAT64 = 1e-9
"""Two float64 pipelines fed the same model states along different routes (a sweep member vs
a lone ``score`` run, a resumed run vs an uninterrupted one, a nested Gram vs separate ones):
the eigen-solver's round-off on near-degenerate spectra is amplified by exp() and ratios, to
well above 1e-12 but far below any real change."""

REBATCHED = 1e-6
"""Float64 metrics of float32 model states computed in a different batch (other padding,
another process's batch in a data-parallel run): the model's float32 kernels round
differently, ~1e-7 relative in the states, which the spectrum carries through."""

FLOAT32 = 1e-5
"""Float32 model states compared with transformers' own forward pass of the same input
(``output_hidden_states``): the same kernels, reached through hooks instead of outputs."""

FLOAT32_RECOMPUTED = 1e-4
"""Float32 tensors recomputed through a different call (``get_image_features`` of one sample
vs the adapter's batch): other kernel shapes and reduction orders, over several layers."""


PINNED_LIBRARIES = ("torch", "transformers", "tokenizers", "numpy", "pillow", "torchvision")
"""The libraries whose release changes the tiny models' float32 round-off."""


def pin_environment() -> dict[str, str]:
    """The versions of :data:`PINNED_LIBRARIES` installed here (recorded in each pin file)."""
    from importlib.metadata import version

    return {name: version(name) for name in PINNED_LIBRARIES}


def pin_tolerance(pin: dict) -> float:
    """:data:`EXACT` where ``pin`` (tests/data/*.json, written by scripts/pin_numbers.py) was
    written under the libraries installed here: a refactor must not move a single number.
    Under other releases, the float32 forward of the tiny model rounds differently (seen:
    6.6e-8 relative after a torch upgrade), so :data:`REBATCHED` applies."""
    return EXACT if pin.get("environment") == pin_environment() else REBATCHED


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (``results.jsonl``, ``errors.jsonl``), blank lines
    skipped."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_summary(run: Path) -> dict:
    """A run folder's ``summary.json``."""
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def assert_same_run(a: Path, b: Path, rel: float) -> None:
    """Runs ``a`` and ``b`` scored the same samples in the same order with the same tokens and
    texts, and every per-sample float, dataset eRank and ratio agrees to ``rel`` (one of the
    tolerances above). A ratio of two eRanks (in [-1, 1]) carries their relative error as an
    absolute one, hence ``abs_tol=rel``."""
    ra, rb = read_jsonl(a / "results.jsonl"), read_jsonl(b / "results.jsonl")
    assert [r["id"] for r in ra] == [r["id"] for r in rb] and ra
    for x, y in zip(ra, rb, strict=True):
        assert x.get("tokens") == y.get("tokens") and x.get("text") == y.get("text"), x["id"]
        for key, value in x.items():
            if isinstance(value, float):
                assert math.isclose(value, y[key], rel_tol=rel, abs_tol=rel), (x["id"], key)
    sa, sb = read_summary(a), read_summary(b)
    assert sa["n_samples"] == sb["n_samples"]
    assert sa["erank"].keys() == sb["erank"].keys()
    for stage, value in sa["erank"].items():
        assert math.isclose(value, sb["erank"][stage], rel_tol=rel), stage
    for key in ("image_reduction_ratio", "image_text_alignment"):
        assert math.isclose(sa[key], sb[key], rel_tol=rel, abs_tol=rel), key


def assert_tree_close(actual: object, expected: object, rel: float, path: str = "") -> None:
    """Nested dicts and lists equal in shape and in every non-float leaf, and every float
    within ``rel`` (relative and absolute); ``actual`` may hold extra keys. The failure names
    the path of the leaf (``.ci95.erank_image[0]``)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) >= set(expected), path
        for key, value in expected.items():
            assert_tree_close(actual[key], value, rel, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_tree_close(a, e, rel, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=rel, abs_tol=rel), (path, actual, expected)
    else:
        assert actual == expected, (path, actual, expected)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Every row of ``x`` (n, d) scaled to unit L2 norm."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class PageParser(HTMLParser):
    """Collects what a self-contained page must get right."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.svgs = 0
        self.links: list[str] = []  # ids that in-page links (href="#id") lead to
        self.ids: list[str] = []
        self.external: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in ("img", "br", "meta", "link", "input"):
            self.stack.append(tag)
        if tag == "img":
            self.imgs.append(attrs.get("src") or "")
        if tag == "svg":
            self.svgs += 1
        if tag == "script":
            self.scripts += 1
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
            elif value.startswith("#") and tag == "a":
                self.links.append(value[1:])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> PageParser:
    """A self-contained HTML page (a report), parsed; its tags must close and its CSS fetch
    nothing."""
    source = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(source)
    parser.close()
    assert not parser.stack, f"unclosed tags {parser.stack}"
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", source), "CSS fetches something"
    return parser


@functools.cache
def families(modality: str = "image") -> tuple[str, ...]:
    """Every registered adapter family of ``modality`` (``"image"``: the VLMs the image tests
    run over; ``"audio"``: tests/test_audio_adapters.py), from the registry (never a hard-coded
    list: a new family is tested by every family test). Imports the families on first call."""
    from mm_align.adapters import adapter_class, supported_families

    return tuple(family for family in supported_families() if adapter_class(family).modality == modality)


HEAVY = ("torch", "transformers", "torchvision", "matplotlib", "datasets", "sklearn", "scipy")


def loaded_after(code: str) -> set[str]:
    """The heavy top-level packages (:data:`HEAVY`) loaded after running ``code`` in a fresh
    interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
