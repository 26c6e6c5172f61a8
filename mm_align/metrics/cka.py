"""Linear centred kernel alignment (CKA; Kornblith et al., ICML 2019).

Compares two representations of the SAME n samples, e.g. per-sample mean image-token
states ``(n, d1)`` and per-sample mean text-token states ``(n, d2)``: row i of both is
sample i. With column-centred X and Y,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
              = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   K = X X^T, L = Y Y^T,

the biased ("original") HSIC estimator, as in the linear CKA of the platonic-representation
code (github.com/minyoungg/platonic-rep, ``metrics.py``); its ``+1e-6`` in the denominator
is ``eps`` (0 by default). The preparation that code applies first (outlier clamp, unit rows)
is :mod:`mm_align.metrics.platonic`'s, not this function's. CKA lies in [0, 1], is invariant to orthogonal transforms and isotropic scaling
of either side (not to general invertible linear maps), and is 1 for Y = X.
"""

from __future__ import annotations

import torch

from mm_align.metrics.checks import real_matrix

__all__ = ["linear_cka"]


def _matrix(x: torch.Tensor, what: str) -> torch.Tensor:
    return real_matrix(x, what, unit="samples")


def linear_cka(x: torch.Tensor, y: torch.Tensor, eps: float = 0.0) -> float:
    """Linear CKA between two representations of the same samples, in [0, 1].

    Args:
        x: ``(n, d1)``; y: ``(n, d2)``; row i of both describes sample i, n >= 2.
        eps: added to the denominator ``sqrt(HSIC(K, K) HSIC(L, L))`` (unnormalised HSIC,
            ``tr(K H L H)``); platonic-rep adds ``1e-6``.

    Returns:
        the CKA similarity (1 = identical up to rotation and scale).

    Raises:
        ValueError: shapes disagree, n < 2, NaN/Inf, or a side is constant over samples
            (zero variance: CKA undefined).

    The ``(d1, d2)`` feature form or the ``(n, n)`` Gram form is used, whichever is cheaper;
    they are equal.

    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> round(linear_cka(x, 5 * x @ torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]), 12)
    1.0
    """
    X, Y = _matrix(x, "x"), _matrix(y, "y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"x and y need the same samples (rows), got {X.shape[0]} and {Y.shape[0]}")
    n = X.shape[0]
    if n < 2:
        raise ValueError(f"CKA needs at least 2 samples, got {n}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    X, Y = X - X.mean(0), Y - Y.mean(0)
    if n < X.shape[1] + Y.shape[1]:
        K, L = X @ X.T, Y @ Y.T
        cross, kk, ll = (K * L).sum(), K.square().sum(), L.square().sum()
    else:
        cross = (Y.T @ X).square().sum()
        kk, ll = (X.T @ X).square().sum(), (Y.T @ Y).square().sum()
    if not (kk > 0 and ll > 0):
        raise ValueError("a representation is constant over the samples: CKA is undefined")
    return float(cross / (kk.sqrt() * ll.sqrt() + eps))
