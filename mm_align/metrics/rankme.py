"""RankMe (Garrido, Balestriero, Najman, LeCun, ICML 2023, arXiv 2210.02885).

    RankMe(Z) = exp(-sum_k p_k ln p_k),   p_k = sigma_k(Z) / sum_j sigma_j(Z) + eps,

over the min(n, d) SINGULAR values sigma_k of the embedding matrix Z itself (n embeddings
of size d, no centring, no row normalisation), eps = 1e-7 as in the paper, natural log.

Not the same number as mm-align's :func:`~mm_align.metrics.spectral.erank` on the same
rows: eRank centres the rows, scales each to unit norm, and takes the entropy of the
EIGENVALUES of the covariance, i.e. of the squared singular values of the normalised matrix.
For the same singular values, the entropy of ``s / sum s`` is at least that of
``s^2 / sum s^2`` (squaring concentrates the distribution); always name which of the two a
number is.
"""

from __future__ import annotations

import math

import torch

__all__ = ["RANKME_EPS", "rankme"]

RANKME_EPS = 1e-7
"""The paper's epsilon added to every normalised singular value."""


def rankme(Z: torch.Tensor, eps: float = RANKME_EPS, center: bool = False) -> float:
    """RankMe effective rank of an ``(n, d)`` embedding matrix, between ~1 and min(n, d).

    Args:
        Z: ``(n, d)`` embeddings (rows), any real dtype; computed in float64.
        eps: added to each ``p_k`` before the entropy (the paper's 1e-7; 0 gives the plain
            entropy of the normalised singular values).
        center: subtract the row mean first (NOT the paper's definition; off by default).

    Returns:
        ``exp(H)``; with eps > 0 it is slightly above the eps = 0 value.

    >>> round(rankme(torch.eye(4), eps=0.0), 12)
    4.0
    >>> round(rankme(torch.diag(torch.tensor([3.0, 1.0])), eps=0.0), 6)  # p = (0.75, 0.25)
    1.754765
    """
    if not isinstance(Z, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (n, d), got {type(Z).__name__}")
    if Z.ndim != 2 or Z.is_complex() or Z.dtype == torch.bool:
        raise ValueError(f"expected a real 2-D tensor (n, d), got {Z.dtype} {tuple(Z.shape)}")
    if min(Z.shape) == 0:
        raise ValueError(f"the embedding matrix is empty: shape {tuple(Z.shape)}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    X = Z.detach().to(torch.float64)
    if not bool(torch.isfinite(X).all()):
        raise ValueError("the embedding matrix holds NaN or Inf values")
    if center:
        X = X - X.mean(0)
    s = torch.linalg.svdvals(X)
    total = s.sum()
    if not total > 0:
        raise ValueError("the embedding matrix is zero: it has no singular values to normalise")
    p = s / total + eps
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))
