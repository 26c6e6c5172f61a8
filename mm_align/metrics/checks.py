"""Input checks the metric functions share: one-line ``ValueError`` messages naming the input."""

from __future__ import annotations

import torch

__all__ = ["real_matrix", "unit_rows"]


def real_matrix(x: torch.Tensor, what: str, *, min_rows: int = 1, unit: str = "rows") -> torch.Tensor:
    """``x`` as a detached float64 copy, after checking it is a finite real ``(N, d)`` tensor
    with ``N >= min_rows`` (``unit`` names the rows in the message) and ``d >= 1``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what}: expected a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2 or x.is_complex() or x.dtype == torch.bool or x.shape[1] == 0:
        raise ValueError(f"{what}: expected a real 2-D tensor (N, d > 0), got {x.dtype} {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{what}: needs at least {min_rows} {unit}, got {x.shape[0]}")
    out = x.detach().to(torch.float64, copy=True)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{what}: holds NaN or Inf values")
    return out


def unit_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    """The rows of a float64 ``(N, d)`` matrix scaled to unit length; all-zero rows are an error."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if not bool((norms > 0).all()):
        raise ValueError(f"{what}: has all-zero rows, which cannot be unit-normalised")
    return x / norms
