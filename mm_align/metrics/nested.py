"""The spectra of a sample's rows and of a subset of them, from ONE Gram product.

The LLM's ``image`` stage is a subset of the ``joint`` stage's rows (same pass, same layer),
but each stage is centred on, and row-normalised over, its OWN rows, so the image stage's
Gram matrix is not simply a block of the joint stage's. What can be shared is derived here.

Let X be the N x d joint rows, S the subset (indicator vector s), and
``mu`` = mean of all rows, ``mu_S`` = mean of the subset's rows, ``delta = mu_S - mu``. Centre
every row once, each on the mean of the stage it must be exact for:

    y_a = x_a - mu_S   (a in S),        y_a = x_a - mu   (a not in S).

* Image stage: its centred rows are exactly the ``y_a, a in S``, so its centred Gram is the
  S x S block of ``G = Y Y^T``, with no extra round-off.
* Joint stage: its centred rows are ``x_a - mu = y_a + s_a delta``, hence

      (x_a - mu).(x_b - mu) = G_ab + s_b w_a + s_a w_b + s_a s_b |delta|^2,   w = Y delta,

  an O(N^2) rank-2 update of G with ``w`` (O(N d)) computed directly.

Row normalisation divides entry (a, b) of each stage's centred Gram by the product of that
stage's row norms, taken directly from the centred rows (O(N d)); the unit diagonal is set
exactly. The single O(N^2 d) product ``Y Y^T`` thus replaces two (N^2 d and |S|^2 d); nothing
subtracts large uncentred quantities, so the result agrees with separate computations to
float64 round-off (tests/test_perf_spectral.py pins 1e-9 relative on the entropy).

When N > d the spectra come from d x d covariances, which do not share (the row norms differ
per stage): the two are then computed separately.
"""

from __future__ import annotations

import torch

from mm_align.metrics.gram import lower_gram, spectra_of_grams
from mm_align.metrics.spectral import float64_rows, gram_of_rows, kept_rows, normalized_rows

__all__ = ["nested_grams", "nested_spectra"]


def _check_subset(subset: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(subset, torch.Tensor) or subset.dtype != torch.bool or subset.shape != (n,):
        raise ValueError(f"subset must be a 1-D bool tensor of length {n}")
    if int(subset.sum()) < 2:
        raise ValueError(f"the subset has {int(subset.sum())} rows; an eRank needs at least 2")
    return subset


def _cosine(gram: torch.Tensor, norms: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Centred Gram -> Gram of the unit-normalised kept rows, divided by their count."""
    if not bool(keep.all()):
        gram, norms = gram[keep][:, keep], norms[keep]
    out = gram / norms.unsqueeze(1) / norms.unsqueeze(0)
    out.diagonal().fill_(1.0)
    return out / out.shape[0]


def nested_grams(
    R: torch.Tensor, subset: torch.Tensor, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Trace-1 Gram matrices of ``R`` and of ``R[subset]``, each centred and row-normalised
    over its own rows (see the module docstring), from one product when N <= d.

    Args:
        R: ``(N, d)`` states, any floating dtype and device.
        subset: ``(N,)`` bool, at least 2 True.
        dtype: dtype of the Gram product (see :func:`~mm_align.metrics.gram.lower_gram`).

    Returns:
        ``(gram_all, gram_subset)``: float64 on R's device, of sizes ``min(N', d)`` and
        ``min(N_S', d)`` (rows that vanish after centring dropped, with a warning);
        lower triangles are what counts.
    """
    X = float64_rows(R)
    n, d = X.shape
    subset = _check_subset(subset.to(X.device), n)
    if n > d:
        return gram_of_rows(normalized_rows(X), dtype), gram_of_rows(normalized_rows(X[subset]), dtype)
    Y = X - X.mean(dim=0, keepdim=True)
    norms, keep = kept_rows(Y, X)
    delta = Y[subset].mean(dim=0)
    Y[subset] -= delta
    sub_norms, sub_keep = kept_rows(Y[subset], X[subset])
    gram = lower_gram(Y, dtype)
    s = subset.to(torch.float64)
    w = Y @ delta
    joint = gram + torch.outer(s, w) + torch.outer(w, s) + delta.dot(delta) * torch.outer(s, s)
    return _cosine(joint, norms, keep), _cosine(gram[subset][:, subset], sub_norms, sub_keep)


def nested_spectra(
    R: torch.Tensor, subset: torch.Tensor, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spectrum(R), spectrum(R[subset]))`` (see :func:`~mm_align.metrics.spectrum`) from
    one shared Gram product; ``device`` as there.

    >>> R = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -2.0, 0.0]])
    >>> whole, part = nested_spectra(R, torch.tensor([True, True, False, False]))
    >>> whole.tolist(), part.tolist()
    ([0.5, 0.5, 0.0], [1.0, 0.0])
    """
    whole, part = spectra_of_grams(list(nested_grams(R, subset)), device)
    return whole, part
