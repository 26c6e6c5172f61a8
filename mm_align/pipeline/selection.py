"""Which samples of a data set a run scores: all of them, the first N (``--limit``) or a
seeded random N (``--sample``, the paper's protocol for large corpora: 10,000 texts drawn
with seed 123).

The chosen samples keep their ids and are numbered 0..N-1 in data set order, so everything
downstream (batching, data-parallel shares, the shuffled control, resume) sees an ordinary
data set of N samples. The data fingerprint stays the whole data set's: with the config's
``limit`` / ``sample`` / ``sample_seed`` it says exactly what was scored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from mm_align.data import Sample, SampleSource
from mm_align.warn import warn

__all__ = ["Selection", "select"]


class Selection(Sequence[Sample]):
    """A lazy view of some samples of ``source``, renumbered: item k is the sample at position
    ``positions[k]`` (increasing) with ``index`` k (images are still not loaded, texts not
    copied). Iterating makes one pass over the source, so a stream is never materialised;
    indexing needs a source with random access."""

    def __init__(self, source: SampleSource | Sequence[Sample], positions: Sequence[int], description: str) -> None:
        self._source = source
        self.positions = positions
        self.description = description

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> Sample:  # type: ignore[override]  # no slices needed
        return dataclasses.replace(self._source[self.positions[k]], index=k)

    def __iter__(self) -> Iterator[Sample]:
        wanted = iter(self.positions)
        target = next(wanted, None)
        k = 0
        for position, sample in enumerate(self._source):
            if target is None:
                return
            if position == target:
                yield dataclasses.replace(sample, index=k)
                k, target = k + 1, next(wanted, None)


def select(source: SampleSource | Sequence[Sample], limit: int | None = None, sample: int | None = None,
           seed: int = 123) -> Selection:
    """All samples of ``source``, the first ``limit``, or ``sample`` of them drawn without
    replacement by ``numpy.random.default_rng(seed).choice`` and put back in data set order
    (all of them when ``sample`` >= their number, with a warning that says how many there
    are when it is larger).

    The draw needs the number of samples: a stream's is counted by the pass that computes
    its fingerprint (bytes read, no image decoded), so ``--sample`` picks the same pairs
    from a stream as from the same pairs in any other layout."""
    n = len(source)
    if sample is not None and sample > n:
        warn(f"--sample {sample} asks for more samples than the data set holds: it has {n}, "
             f"all {n} are scored")
    if sample is not None and sample < n:
        drawn = np.random.default_rng(seed).choice(n, size=sample, replace=False)
        return Selection(source, sorted(int(i) for i in drawn), f"random {sample} of {n} (seed {seed})")
    if limit is not None and limit < n:
        return Selection(source, range(limit), f"first {limit} of {n}")
    return Selection(source, range(n), f"all {n}")
