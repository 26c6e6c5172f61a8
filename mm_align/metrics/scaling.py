"""Power law of representation entropy (or eRank) against model size (GEOMETRY.md, Q2).

The companion paper (Tan, Li, Huang, arXiv 2402.03471) reports that the representation
entropy of LLM embeddings follows a power law in model size; its fit is not public. This
module's choices (all named parameters, see docs/CHOICES.md):

* form ``E = a * P^b``, ordinary least squares of ``ln E`` on ``ln P``; the exponent b is
  SIGNED (a decreasing curve has b < 0; GEOMETRY.md writes ``a * P^(-b)``, whose b is minus
  this one); ``r2`` is the R^2 in log space;
* optional ``E = a * P^b + c`` (``offset=True``): nonlinear least squares in linear space,
  by variable projection (a, c are linear given b; b minimises a bounded 1-D search);
  ``r2`` is then in linear space;
* P is whatever size the caller passes (total or non-embedding parameters); E is whatever
  per-model value (mean entropy, eRank, normalised entropy).

:func:`bootstrap_power_law` resamples texts: per-sample entropies per model in, percentile
intervals of a and b out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from mm_align.metrics.bootstrap import percentile_interval, resample_indices

__all__ = ["STATISTICS", "PowerLawFit", "bootstrap_power_law", "fit_power_law", "model_statistic"]

STATISTICS = ("entropy", "erank", "erank_mean")
Statistic = Literal["entropy", "erank", "erank_mean"]


class PowerLawFit(NamedTuple):
    """``E = a * P^b + c`` (``c = 0`` without offset); ``r2`` of the fitted space."""

    a: float
    b: float
    c: float
    r2: float


def _positive_sizes(
    sizes: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, min_n: int
) -> tuple[np.ndarray, np.ndarray]:
    P = np.asarray(sizes, dtype=np.float64)
    E = np.asarray(values, dtype=np.float64)
    if P.ndim != 1 or P.shape != E.shape:
        raise ValueError(f"sizes and values need the same 1-D length, got {P.shape} and {E.shape}")
    if P.size < min_n:
        raise ValueError(f"the fit needs at least {min_n} models, got {P.size}")
    if not (np.isfinite(P).all() and np.isfinite(E).all()):
        raise ValueError("sizes and values must be finite")
    if not (P > 0).all():
        raise ValueError("model sizes must be > 0")
    if np.unique(P).size < 2:
        raise ValueError("the fit needs at least 2 distinct model sizes")
    return P, E


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)


def _fit_log_log(P: np.ndarray, E: np.ndarray) -> PowerLawFit:
    if not (E > 0).all():
        raise ValueError("a log-log fit needs values > 0 (use offset=True for other data)")
    x, y = np.log(P), np.log(E)
    xc = x - x.mean()
    b = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    log_a = float(y.mean() - b * x.mean())
    return PowerLawFit(math.exp(log_a), b, 0.0, _r2(y, log_a + b * x))


def _fit_offset(P: np.ndarray, E: np.ndarray, bounds: tuple[float, float]) -> PowerLawFit:
    from scipy.optimize import minimize_scalar  # lazy: scipy is heavy to import

    p0 = math.exp(float(np.log(P).mean()))  # fit in P / p0 for conditioning
    x = P / p0

    def linear_part(b: float) -> tuple[np.ndarray, float]:
        design = np.stack([x**b, np.ones_like(x)], axis=1)
        coef = np.linalg.lstsq(design, E, rcond=None)[0]
        return coef, float(np.sum((design @ coef - E) ** 2))

    best = minimize_scalar(
        lambda b: linear_part(b)[1], bounds=bounds, method="bounded", options={"xatol": 1e-12}
    )
    b = float(best.x)
    (a_scaled, c), _ = linear_part(b)
    return PowerLawFit(float(a_scaled) * p0 ** (-b), b, float(c), _r2(E, a_scaled * x**b + c))


def fit_power_law(
    sizes: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    offset: bool = False,
    exponent_bounds: tuple[float, float] = (-3.0, 3.0),
) -> PowerLawFit:
    """Fit ``values = a * sizes^b`` (+ c with ``offset``) over models of one family.

    Args:
        sizes: model sizes P_k (> 0, at least 2 distinct), e.g. parameter counts.
        values: per-model values E_k, e.g. dataset mean entropy (nats) or eRank; > 0
            without offset.
        offset: also fit an additive constant c (needs at least 3 models).
        exponent_bounds: search interval of b for the offset fit.

    Returns:
        :class:`PowerLawFit` ``(a, b, c, r2)``.

    >>> fit = fit_power_law([1e6, 1e7, 1e8], [2.0 * p**-0.1 for p in (1e6, 1e7, 1e8)])
    >>> round(fit.a, 9), round(fit.b, 12), fit.c, round(fit.r2, 12)
    (2.0, -0.1, 0.0, 1.0)
    """
    P, E = _positive_sizes(sizes, values, 3 if offset else 2)
    if not offset:
        return _fit_log_log(P, E)
    lo, hi = exponent_bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"exponent_bounds must be a finite interval (lo < hi), got {exponent_bounds}"
        )
    return _fit_offset(P, E, (lo, hi))


def model_statistic(entropies: np.ndarray, statistic: Statistic = "entropy") -> np.ndarray:
    """Per-model value from per-sample entropies (nats), along the last axis.

    ``"entropy"``: mean H; ``"erank"``: exp(mean H) (Diff-eRank's Algorithm (a));
    ``"erank_mean"``: mean exp(H) (Algorithm (b)).

    >>> model_statistic(np.log(np.array([2.0, 8.0])), "erank").item()
    4.0
    """
    H = np.asarray(entropies, dtype=np.float64)
    if statistic == "entropy":
        return H.mean(axis=-1)
    if statistic == "erank":
        return np.exp(H.mean(axis=-1))
    if statistic == "erank_mean":
        return np.exp(H).mean(axis=-1)
    raise ValueError(f"unknown statistic {statistic!r}; choose one of {STATISTICS}")


def _entropy_rows(
    per_sample_entropies: Sequence[Sequence[float]] | np.ndarray, n_models: int
) -> list[np.ndarray]:
    rows = [np.asarray(h, dtype=np.float64) for h in per_sample_entropies]
    if len(rows) != n_models:
        raise ValueError(f"got {n_models} sizes but entropies for {len(rows)} models")
    for k, h in enumerate(rows):
        if h.ndim != 1 or h.size == 0:
            raise ValueError(
                f"model {k}: expected a non-empty 1-D sequence of per-sample entropies"
            )
        if not np.isfinite(h).all():
            raise ValueError(f"model {k}: entropies hold NaN or Inf")
    return rows


def bootstrap_power_law(
    sizes: Sequence[float] | np.ndarray,
    per_sample_entropies: Sequence[Sequence[float]] | np.ndarray,
    statistic: Statistic = "entropy",
    offset: bool = False,
    paired: bool = True,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the power-law parameters, resampling texts.

    Args:
        sizes: model sizes P_k. per_sample_entropies: for each model, its per-text
            entropies (nats), e.g. ``matrix_entropy`` of each text.
        statistic: per-model value fitted (:func:`model_statistic`).
        offset: fit ``a P^b + c`` (:func:`fit_power_law`).
        paired: the models saw THE SAME texts in the same order (equal lengths required):
            one set of resampled indices serves every model. ``False`` resamples each model
            independently.
        n_boot, level, seed: replicates, coverage, ``numpy.random.default_rng`` seed.

    Returns:
        ``{"a": (lo, hi), "b": (lo, hi)}`` (and ``"c"`` with offset).

    >>> h = [[1.0, 1.2, 0.8], [0.5, 0.6, 0.4]]
    >>> ci = bootstrap_power_law([1e6, 1e8], h, n_boot=200)
    >>> ci["b"][0] < ci["b"][1] < 0
    True
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rows = _entropy_rows(per_sample_entropies, len(sizes))
    rng = np.random.default_rng(seed)
    if paired:
        if len({h.size for h in rows}) != 1:
            raise ValueError("paired resampling needs the same number of texts for every model")
        idx = resample_indices(rng, n_boot, rows[0].size)
        values = model_statistic(np.stack(rows)[:, idx], statistic)  # (models, n_boot)
    else:
        values = np.stack(
            [model_statistic(h[resample_indices(rng, n_boot, h.size)], statistic) for h in rows]
        )
    fits = [fit_power_law(sizes, values[:, r], offset=offset) for r in range(n_boot)]
    names = ("a", "b", "c") if offset else ("a", "b")
    return {
        name: percentile_interval(np.array([getattr(f, name) for f in fits]), level)
        for name in names
    }
