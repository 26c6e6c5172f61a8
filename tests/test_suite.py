"""Rules of the test suite itself: the fast loop (``pytest -m "not slow"``) reaches every
test module, and the markers it relies on are declared."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.helpers import COLLECTED


def test_the_fast_loop_reaches_every_collected_module(request: pytest.FixtureRequest) -> None:
    """Of the tests this session collected (before ``-m`` deselected any), every module has at
    least one not marked ``slow``. Run over the whole suite (the fast loop or CI), it covers
    every test module."""
    fast: dict[str, int] = defaultdict(int)
    for item in request.config.stash[COLLECTED]:
        fast[item.path.name] += item.get_closest_marker("slow") is None
    assert [name for name, n in sorted(fast.items()) if n == 0] == []


def test_markers_are_declared_and_strict(request: pytest.FixtureRequest) -> None:
    """pyproject declares the three markers, and a misspelt one is an error, not a no-op."""
    assert request.config.getoption("strict_markers")
    assert {"slow", "browser", "gpu"} <= {line.split(":")[0] for line in request.config.getini("markers")}
