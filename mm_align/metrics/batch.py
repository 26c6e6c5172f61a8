"""Spectra and entropies of many samples' representations in one call.

For a pipeline that has a whole batch of states at hand: each matrix's Gram product runs where
the matrix lives, then the eigen-solver runs once per device (batched on a GPU, see
:func:`mm_align.metrics.gram.spectra_of_grams`). Results equal :func:`~mm_align.metrics.spectrum`
of each matrix on its own (bit for bit on the CPU; to float64 round-off on a GPU, where padding
changes the solver's arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mm_align.metrics.gram import spectra_of_grams
from mm_align.metrics.spectral import gram_of_rows, normalized_rows, spectral_entropy

__all__ = ["batch_entropies", "batch_spectra"]


def batch_spectra(
    matrices: Sequence[torch.Tensor], device: str | torch.device | None = None
) -> list[torch.Tensor]:
    """:func:`~mm_align.metrics.spectrum` of every ``(N_i, d_i)`` matrix, in order.

    Args:
        matrices: one sample's states each, any sizes, dtypes and devices.
        device: where the eigen-solver runs (``None``: each matrix's device; ``"cpu"``).

    Raises:
        ValueError: as :func:`~mm_align.metrics.spectrum`, for the first bad matrix; the
            message starts with its position.
    """
    grams = []
    for i, R in enumerate(matrices):
        try:
            grams.append(gram_of_rows(normalized_rows(R)))
        except ValueError as err:
            raise ValueError(f"matrix {i}: {err}") from None
    return spectra_of_grams(grams, device)


def batch_entropies(
    matrices: Sequence[torch.Tensor], device: str | torch.device | None = None
) -> list[float]:
    """Matrix entropies (nats) of every matrix: :func:`batch_spectra` then
    :func:`~mm_align.metrics.spectral_entropy`.

    >>> g = torch.Generator().manual_seed(0)
    >>> hs = batch_entropies([torch.randn(10, 32, generator=g), torch.randn(40, 8, generator=g)])
    >>> [round(h, 4) for h in hs]
    [2.0903, 1.9058]
    """
    return [spectral_entropy(p) for p in batch_spectra(matrices, device)]
