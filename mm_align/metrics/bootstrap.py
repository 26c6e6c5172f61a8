"""Dataset-level metrics from per-sample entropies, and their bootstrap uncertainty.

Pure functions of per-sample entropies (nats) keyed by stage: ``vision``, ``projector``,
``image``, ``text``, ``joint`` (eRank1 ... eRank5 of the paper, section 5.2). No model, file
or tensor knowledge.

The unit that is resampled is the SAMPLE: one bootstrap replicate draws n sample indices
with replacement and uses them for every stage, because the two ratios combine several
stages of the same samples and their per-sample entropies are correlated.

Difference between two runs (``paired_difference``): each replicate applies the same
indices to both runs, so diff* = metric(b*) - metric(a*) keeps the per-sample pairing. The
two-sided p-value inverts the percentile interval,

    p = min(1, 2 * min((1 + #{diff* <= 0}) / (B + 1), (1 + #{diff* >= 0}) / (B + 1))),

i.e. the smallest 1 - level at which the percentile interval would exclude 0. Why this
estimator:

* every metric is a smooth function of the per-stage entropy means (exp of a mean, and
  ratios of such), so the bootstrap distribution of diff* is consistent for it (delta
  method) even though the statistic is not a mean of per-sample differences. The one
  exception is the ``max`` in the alignment: where two of eRank3..5 are nearly tied the
  bootstrap mixes two branches and its interval is only approximate;
* it tests exactly the hypothesis the interval describes (metric(a) == metric(b)) and
  always agrees with the reported interval: the interval excludes 0 iff p < 1 - level, up
  to the +1 terms, which keep p >= 2 / (B + 1) instead of reporting an impossible 0;
* a sign-flip or swap permutation test was rejected: flipping per-sample differences only
  has a meaning for a statistic that is a mean of those differences (true of log eRank,
  not of the eRanks' differences or the ratios), and swapping whole per-sample records
  tests that the two runs' entropy distributions are exchangeable, a stronger null than
  "same metric", so it can reject when the metrics agree.

A run compared with itself gets diff* == 0 in every replicate, hence diff 0, CI [0, 0] and
p = 1 exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np

from mm_align.metrics.aggregate import (
    aggregate_erank,
    image_reduction_ratio,
    image_text_alignment,
)
from mm_align.stages import LLM_STAGES, METRICS, STAGES, VISION_STAGES

__all__ = [
    "METRICS",
    "STAGES",
    "Difference",
    "bootstrap_ci",
    "dataset_metrics",
    "format_p",
    "paired_difference",
    "percentile_interval",
    "resample_indices",
    "small_sample_note",
    "unpaired_difference",
]


# Elements gathered per block of replicates (float64): bounds the memory of the resampled
# means at ~32 MB whatever n_boot x n is.
_GATHER_BLOCK = 1 << 22


class Difference(TypedDict):
    """One metric compared between run a (baseline) and run b."""

    a: float
    b: float
    diff: float
    ci95: list[float]
    p_value: float


def format_p(p: float) -> str:
    """A bootstrap p-value as text, the one format of the console, the reports and exports:
    three decimals, and below 0.001 only the bound (``n_boot`` replicates cannot resolve it
    more finely).

    >>> format_p(0.04213), format_p(0.0002)
    ('p = 0.042', 'p < 0.001')
    """
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# Below this many samples a percentile bootstrap interval is too narrow to trust (its
# coverage falls short of the nominal 95%), the usual rule of thumb.
MIN_INTERVAL_SAMPLES = 30


def small_sample_note(n: int) -> str:
    """A caveat for intervals over ``n`` samples, or ``""`` from
    :data:`MIN_INTERVAL_SAMPLES` on.

    >>> small_sample_note(4)
    'intervals over n = 4 < 30 samples are rough (the bootstrap undercovers)'
    """
    if n >= MIN_INTERVAL_SAMPLES:
        return ""
    return f"intervals over n = {n} < {MIN_INTERVAL_SAMPLES} samples are rough (the bootstrap undercovers)"


def _stage_matrix(entropies: Mapping[str, Sequence[float]]) -> tuple[tuple[str, ...], np.ndarray]:
    """Known stages present in ``entropies`` and their values as a (stages, n) float array."""
    stages = tuple(s for s in STAGES if s in entropies and len(entropies[s]) > 0)
    if not stages:
        raise ValueError(
            f"no per-sample entropies for any stage; expected some of {', '.join(STAGES)}"
        )
    rows = [np.asarray(entropies[s], dtype=np.float64) for s in stages]
    lengths = {s: r.shape for s, r in zip(stages, rows)}
    if any(r.ndim != 1 for r in rows) or len({r.shape[0] for r in rows}) != 1:
        raise ValueError(
            "every stage needs one entropy per sample, the same samples in the same order; "
            f"got shapes {lengths}"
        )
    H = np.stack(rows)
    if not np.isfinite(H).all():
        bad = sorted({stages[i] for i in np.nonzero(~np.isfinite(H))[0]})
        raise ValueError(f"entropies of stage(s) {', '.join(bad)} hold NaN or Inf")
    return stages, H


def _ratios(eranks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's two ratios of (arrays of) dataset-level eRanks, where their stages exist.

    The scalar functions of ``aggregate`` stay the single definition of the ratios; they are
    applied element-wise, a loop over replicates only (the costly means are vectorised).
    """
    out: dict[str, np.ndarray] = {}
    if all(s in eranks for s in VISION_STAGES):
        out["image_reduction_ratio"] = np.vectorize(image_reduction_ratio, otypes=[float])(
            *(eranks[s] for s in VISION_STAGES)
        )
    if all(s in eranks for s in LLM_STAGES):
        out["image_text_alignment"] = np.vectorize(image_text_alignment, otypes=[float])(
            *(eranks[s] for s in LLM_STAGES)
        )
    return out


def dataset_metrics(entropies: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Dataset-level metrics of the paper from per-sample entropies.

    Args:
        entropies: stage -> per-sample matrix entropies in nats, the same samples in the
            same order for every stage. Unknown keys are ignored.

    Returns:
        ``erank_<stage>`` = exp(mean H) (Algorithm (a)) for every stage present, and
        ``image_reduction_ratio`` / ``image_text_alignment`` computed from those dataset
        eRanks when their stages are present (the paper's tables do the same).
    """
    stages, H = _stage_matrix(entropies)
    eranks = {s: aggregate_erank(row.tolist()) for s, row in zip(stages, H)}
    out = {f"erank_{s}": v for s, v in eranks.items()}
    out.update(
        {k: float(v) for k, v in _ratios({s: np.asarray(v) for s, v in eranks.items()}).items()}
    )
    return out


def _replicate_metrics(
    stages: tuple[str, ...], H: np.ndarray, idx: np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric for each row of resampled indices ``idx`` (B, n): metric -> (B,) array."""
    n_boot, n = idx.shape
    means = np.empty((len(stages), n_boot))
    block = max(1, _GATHER_BLOCK // max(1, n * len(stages)))
    for start in range(0, n_boot, block):
        rows = idx[start : start + block]
        means[:, start : start + block] = H[:, rows].mean(axis=-1)
    eranks = {s: np.exp(m) for s, m in zip(stages, means)}
    out = {f"erank_{s}": v for s, v in eranks.items()}
    out.update(_ratios(eranks))
    return out


def resample_indices(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) sample indices drawn with replacement: one bootstrap replicate a row."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    return rng.integers(0, n, size=(n_boot, n))


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates ``values``."""
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    entropies: Mapping[str, Sequence[float]],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric of :func:`dataset_metrics`.

    Samples are resampled with replacement, the same indices for every stage, so the
    ratios' intervals account for the correlation between stages. Deterministic for a
    given ``seed`` (indices come from ``numpy.random.default_rng(seed).integers(0, n,
    size=(n_boot, n))``).

    Returns:
        metric -> (low, high) at the given ``level``.
    """
    _check_level(level)
    stages, H = _stage_matrix(entropies)
    idx = resample_indices(np.random.default_rng(seed), n_boot, H.shape[1])
    reps = _replicate_metrics(stages, H, idx)
    return {k: percentile_interval(v, level) for k, v in reps.items()}


def _differences(
    point_a: Mapping[str, float],
    point_b: Mapping[str, float],
    reps_a: Mapping[str, np.ndarray],
    reps_b: Mapping[str, np.ndarray],
    level: float,
) -> dict[str, Difference]:
    out: dict[str, Difference] = {}
    for key in (k for k in METRICS if k in point_a and k in point_b):
        diffs = reps_b[key] - reps_a[key]
        n = diffs.size
        below = (1 + np.count_nonzero(diffs <= 0)) / (n + 1)
        above = (1 + np.count_nonzero(diffs >= 0)) / (n + 1)
        lo, hi = percentile_interval(diffs, level)
        out[key] = Difference(
            a=point_a[key],
            b=point_b[key],
            diff=point_b[key] - point_a[key],
            ci95=[lo, hi],
            p_value=float(min(1.0, 2 * min(below, above))),
        )
    return out


def _common(
    entropies_a: Mapping[str, Sequence[float]], entropies_b: Mapping[str, Sequence[float]]
) -> tuple[dict[str, Sequence[float]], dict[str, Sequence[float]]]:
    """Both runs restricted to the stages they both have, so every metric is comparable."""
    shared = [s for s in STAGES if s in entropies_a and s in entropies_b]
    return {s: entropies_a[s] for s in shared}, {s: entropies_b[s] for s in shared}


def paired_difference(
    entropies_a: Mapping[str, Sequence[float]],
    entropies_b: Mapping[str, Sequence[float]],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Difference]:
    """Paired bootstrap of ``metric(b) - metric(a)`` for two runs on THE SAME samples.

    Args:
        entropies_a, entropies_b: stage -> per-sample entropies (nats), aligned: position i
            is the same sample in both runs. Only stages present in both are used.
        level: coverage of the interval stored under ``"ci95"`` (0.95 by default).

    Returns:
        metric -> ``{"a", "b", "diff", "ci95": [lo, hi], "p_value"}``; the p-value is
        two-sided, from inverting the percentile interval (see the module docstring).
    """
    _check_level(level)
    ea, eb = _common(entropies_a, entropies_b)
    stages_a, Ha = _stage_matrix(ea)
    stages_b, Hb = _stage_matrix(eb)
    if Ha.shape != Hb.shape:
        raise ValueError(
            f"a paired comparison needs the same samples in both runs; got {Ha.shape[1]} "
            f"and {Hb.shape[1]} samples"
        )
    idx = resample_indices(np.random.default_rng(seed), n_boot, Ha.shape[1])
    return _differences(
        dataset_metrics(ea),
        dataset_metrics(eb),
        _replicate_metrics(stages_a, Ha, idx),
        _replicate_metrics(stages_b, Hb, idx),
        level,
    )


def unpaired_difference(
    entropies_a: Mapping[str, Sequence[float]],
    entropies_b: Mapping[str, Sequence[float]],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Difference]:
    """Like :func:`paired_difference` for runs on DIFFERENT samples: each run is resampled
    independently (its own indices), so the interval is wider than a paired one would be.
    """
    _check_level(level)
    ea, eb = _common(entropies_a, entropies_b)
    stages_a, Ha = _stage_matrix(ea)
    stages_b, Hb = _stage_matrix(eb)
    rng = np.random.default_rng(seed)
    idx_a = resample_indices(rng, n_boot, Ha.shape[1])
    idx_b = resample_indices(rng, n_boot, Hb.shape[1])
    return _differences(
        dataset_metrics(ea),
        dataset_metrics(eb),
        _replicate_metrics(stages_a, Ha, idx_a),
        _replicate_metrics(stages_b, Hb, idx_b),
        level,
    )
