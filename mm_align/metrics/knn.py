"""Mutual k-nearest-neighbour alignment (Huh et al., "The Platonic Representation
Hypothesis", ICML 2024; github.com/minyoungg/platonic-rep, ``metrics.py``).

Two representations of the same n samples (row i of both = sample i, e.g. per-sample pooled
image states and text states) agree when each sample has the same nearest neighbours in
both. For each sample: the k nearest OTHER samples by cosine similarity (rows L2-normalised,
the sample itself excluded) in space A and in space B; the score is the size of the overlap
divided by k, averaged over samples. In [0, 1]; ``k = n - 1`` always gives 1; unrelated
spaces give about ``k / (n - 1)``.

Ties in similarity are broken towards the lower sample index (a stable sort), so the result
is deterministic; the official code's ``argsort`` leaves tie order unspecified.
"""

from __future__ import annotations

import numbers

import torch

from mm_align.metrics.checks import real_matrix, unit_rows

__all__ = ["mutual_knn", "nearest_neighbors", "neighbour_mask", "top_k_others"]


def _unit_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    return unit_rows(real_matrix(x, what, unit="samples"), what)


def _check_k(n: int, k: int) -> None:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k >= n:
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} samples (self excluded), got {n}")


def top_k_others(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each row's k largest entries of ``sim`` off the diagonal.

    Args:
        sim: ``(n, n)`` similarities (not modified); k: 1 <= k < n.

    Returns:
        int64 ``(n, k)``, largest first, ties towards the lower index; row i never holds i.
    """
    n = sim.shape[0]
    _check_k(n, k)
    others = sim.clone()
    others.fill_diagonal_(-torch.inf)
    return torch.sort(others, dim=1, descending=True, stable=True).indices[:, :k]


def neighbour_mask(indices: torch.Tensor) -> torch.Tensor:
    """``(n, k)`` neighbour indices -> ``(n, n)`` bool, True at ``[i, indices[i]]``."""
    n = indices.shape[0]
    return torch.zeros(n, n, dtype=torch.bool, device=indices.device).scatter_(1, indices, True)


def nearest_neighbors(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of each row's k most cosine-similar other rows.

    Args:
        x: ``(n, d)`` representations, no all-zero row; k: 1 <= k < n.

    Returns:
        int64 ``(n, k)``, most similar first; row i never contains i.

    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> nearest_neighbors(x, 1).flatten().tolist()
    [1, 0, 1]
    """
    X = _unit_rows(x, "x")
    return top_k_others(X @ X.T, k)


def mutual_knn(a: torch.Tensor, b: torch.Tensor, k: int = 10) -> float:
    """Mean overlap fraction of the k nearest neighbours of each sample in spaces a and b.

    Args:
        a: ``(n, d1)``; b: ``(n, d2)``; row i of both describes sample i.
        k: neighbours per sample, ``1 <= k < n`` (the platonic-rep paper uses 10).

    Returns:
        a float in [0, 1].

    >>> a = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> mutual_knn(a, a.flip(1) * 3, k=1)
    1.0
    """
    knn_a, knn_b = nearest_neighbors(a, k), nearest_neighbors(b, k)
    n = knn_a.shape[0]
    if knn_b.shape[0] != n:
        raise ValueError(f"a and b need the same samples (rows), got {n} and {knn_b.shape[0]}")
    overlap = (neighbour_mask(knn_a) & neighbour_mask(knn_b)).sum(dim=1).to(torch.float64) / k
    return float(overlap.mean())
