"""Independent float64 re-implementations used as test oracles.

Written in NumPy, deliberately unlike the package's code path: the official procedure of the
Diff-eRank repository (d x d covariance, SVD of the trace-normalised matrix, nansum of
p log p), which mm_align replaces by a symmetric eigen-solver on the smaller Gram matrix.
"""

from __future__ import annotations

import numpy as np


def official_entropy(R: np.ndarray) -> float:
    """Matrix entropy (nats) exactly as the official code computes it, in float64."""
    R = np.asarray(R, dtype=np.float64)
    R = R - R.mean(axis=0)
    R = R / np.linalg.norm(R, axis=1, keepdims=True)
    A = R.T @ R / R.shape[0]
    s = np.linalg.svd(A / np.trace(A), compute_uv=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.nansum(s * np.log(s)))


def official_erank(R: np.ndarray) -> float:
    return float(np.exp(official_entropy(R)))
