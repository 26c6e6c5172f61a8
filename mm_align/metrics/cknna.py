"""CKNNA, centred kernel nearest-neighbour alignment (Huh et al., "The Platonic Representation
Hypothesis", ICML 2024; github.com/minyoungg/platonic-rep, ``metrics.py``,
``AlignmentMetrics.cknna`` with its defaults ``unbiased=True``, ``distance_agnostic=False``).

CKA restricted to each sample's nearest neighbours. With linear kernels ``K = A A^T`` and
``L = B B^T`` over the same n samples (inner products of the features as given; the
reference's pipeline L2-normalises the rows first, :mod:`mm_align.metrics.platonic`):

* ``N_K`` is True at ``(i, j)`` when j is among the k samples other than i with the largest
  ``K[i, j]`` (the diagonal is never chosen); ``N_L`` the same for L;
* ``sim(K, L) = HSIC_u(N ∘ K, N ∘ L)`` with ``N = N_K ∧ N_L`` and ``HSIC_u`` the unbiased
  estimator of Song et al. (JMLR 2012, eq. 5), used on these non-symmetric matrices as
  ``tr(K~ L~)`` + ...;
* ``CKNNA = sim(K, L) / (sqrt(sim(K, K) sim(L, L)) + eps)``; the reference's ``eps`` is
  ``1e-6``.

It lies near [0, 1] (an estimator, not a bound); ``k = n - 1`` gives unbiased CKA. Ties among
neighbours go to the lower sample index (the reference's ``topk`` leaves them unspecified).
"""

from __future__ import annotations

import torch

from mm_align.metrics.checks import real_matrix
from mm_align.metrics.knn import neighbour_mask, top_k_others

__all__ = ["cknna", "hsic_unbiased"]


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator (Song et al. 2012, eq. 5) of two ``(m, m)`` kernel matrices.

    ``[tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((m-1)(m-2)) - 2 / (m-2) 1^T K~ L~ 1] / (m (m-3))``
    with ``K~``, ``L~`` the matrices with a zero diagonal; m >= 4. Returns a 0-d tensor.

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    >>> float(hsic_unbiased(x @ x.T, x @ x.T))
    2.0
    """
    m = K.shape[0]
    if m < 4 or K.shape != (m, m) or L.shape != (m, m):
        raise ValueError(f"unbiased HSIC needs two (m, m) kernels with m >= 4, got {tuple(K.shape)} and {tuple(L.shape)}")
    Kt, Lt = K.clone().fill_diagonal_(0), L.clone().fill_diagonal_(0)
    trace = (Kt * Lt.T).sum()  # tr(K~ L~), also for non-symmetric masked kernels
    ones = Kt.sum() * Lt.sum() / ((m - 1) * (m - 2))
    cross = Kt.sum(0) @ Lt.sum(1)  # 1^T K~ L~ 1 without the (m, m) product
    return (trace + ones - 2 * cross / (m - 2)) / (m * (m - 3))


def _neighbour_hsic(K: torch.Tensor, L: torch.Tensor, mask_k: torch.Tensor, mask_l: torch.Tensor) -> torch.Tensor:
    both = (mask_k & mask_l).to(K.dtype)
    return hsic_unbiased(both * K, both * L)


def cknna(a: torch.Tensor, b: torch.Tensor, k: int = 10, eps: float = 0.0) -> float:
    """CKNNA between two representations of the same samples (see the module doc).

    Args:
        a: ``(n, d1)``; b: ``(n, d2)``; row i of both describes sample i, n >= 4.
        k: neighbours per sample, ``2 <= k < n`` (the reference's ``topk``, 10 in its runs).
        eps: added to the denominator (the reference's ``1e-6``).

    Returns:
        the CKNNA value (1 when ``a`` and ``b`` are the same).

    Raises:
        ValueError: shapes disagree, k out of range, NaN/Inf, or a side's neighbourhood
            HSIC is not positive (CKNNA undefined).

    >>> a = torch.randn(12, 4, dtype=torch.float64)
    >>> round(cknna(a, a, k=3), 12)
    1.0
    """
    A, B = real_matrix(a, "a", unit="samples"), real_matrix(b, "b", unit="samples")
    n = A.shape[0]
    if B.shape[0] != n:
        raise ValueError(f"a and b need the same samples (rows), got {n} and {B.shape[0]}")
    if n < 4:
        raise ValueError(f"CKNNA needs at least 4 samples (unbiased HSIC), got {n}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"CKNNA needs k >= 2 neighbours, got {k!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    K, L = A @ A.T, B @ B.T
    mask_k, mask_l = neighbour_mask(top_k_others(K, k)), neighbour_mask(top_k_others(L, k))
    kl = _neighbour_hsic(K, L, mask_k, mask_l)
    kk = _neighbour_hsic(K, K, mask_k, mask_k)
    ll = _neighbour_hsic(L, L, mask_l, mask_l)
    if not (kk * ll > 0):
        raise ValueError("a representation's neighbourhood HSIC is not positive: CKNNA is undefined")
    return float(kl / ((kk * ll).sqrt() + eps))
