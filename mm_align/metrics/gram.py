"""Symmetric Gram products and the spectra of Gram matrices (Diff-eRank, section 3, steps 3-4).

The spectrum of a sample is that of ``Z Z^T / N`` (N x N) or ``Z^T Z / N`` (d x d), Z its
unit-normalised centred rows: both have the same non-zero eigenvalues, so the smaller is used.
Two things make this cheap:

* **one triangle**: ``torch.linalg.eigvalsh`` reads only the lower triangle, so
  :func:`lower_gram` computes the product in row blocks, each block only up to the diagonal:
  ``(1 + 1/k) / 2`` of the flops of ``Y @ Y.T`` with k blocks (BLAS has a ``syrk`` for this,
  but torch does not expose it). The upper triangle is left at zero and never read.
* **one eigen-solver call per device**: :func:`spectra_of_grams` takes many Gram matrices at
  once. On a CUDA device it pads them to a common size and runs one batched ``eigvalsh``
  (padding adds zero eigenvalues only, which the entropy ignores and the result drops); on the
  CPU, where LAPACK loops over a batch anyway, it solves each matrix at its own size.

Everything is float64 unless a caller asks for a float32 product (``dtype=``); the eigen-solver
is always float64.
"""

from __future__ import annotations

from itertools import pairwise

import torch

__all__ = ["lower_gram", "spectra_of_grams", "spectrum_of_gram"]

# Rows per block of the one-triangle product: small enough that the skipped upper part is most
# of the saving, large enough for BLAS to run at full speed (measured in bench_spectral.py).
_BLOCK_ROWS = 128
_MAX_BLOCKS = 8
# Matrices whose size is within this factor of the largest of a CUDA batch share one padded call.
_PAD_RATIO = 0.75


def lower_gram(Y: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Y @ Y.T`` where :func:`spectrum_of_gram` reads it: the lower triangle, diagonal
    included, is exact; above the diagonal, entries are either exact or zero.

    Args:
        Y: ``(n, k)`` rows, any floating dtype, any device.
        dtype: dtype of the product (float64; float32 is about twice as fast on most hardware
            and costs accuracy, see docs/CHOICES.md).

    Returns:
        ``(n, n)`` float64 tensor on Y's device.

    >>> Y = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> lower_gram(Y).tril()
    tensor([[ 5.,  0.,  0.],
            [11., 25.,  0.],
            [17., 39., 61.]], dtype=torch.float64)
    """
    Y = Y.to(dtype)
    n = Y.shape[0]
    gram = torch.zeros(n, n, dtype=dtype, device=Y.device)
    blocks = max(1, min(_MAX_BLOCKS, n // _BLOCK_ROWS))
    edges = [round(i * n / blocks) for i in range(blocks + 1)]
    for start, stop in pairwise(edges):
        # Block rows [start, stop) against rows [0, stop): the lower part and its diagonal block.
        torch.mm(Y[start:stop], Y[:stop].T, out=gram[start:stop, :stop])
    return gram.to(torch.float64)


def spectrum_of_gram(gram: torch.Tensor) -> torch.Tensor:
    """Trace-normalised eigenvalues of a symmetric positive semi-definite matrix.

    Args:
        gram: ``(..., m, m)`` float64; only the lower triangle is read.

    Returns:
        ``(..., m)`` float64 on gram's device: descending, each >= 0 (round-off negatives
        clamped), summing to 1.
    """
    eig = torch.linalg.eigvalsh(gram, UPLO="L").clamp_min(0.0).flip(-1)
    return eig / eig.sum(dim=-1, keepdim=True)


def _padded_spectra(grams: list[torch.Tensor]) -> list[torch.Tensor]:
    """One batched eigen-solver call for same-device Grams, zero-padded to the largest."""
    size = max(g.shape[-1] for g in grams)
    batch = grams[0].new_zeros(len(grams), size, size)
    for i, g in enumerate(grams):
        batch[i, : g.shape[-1], : g.shape[-1]] = g
    spectra = spectrum_of_gram(batch)
    # A zero-padded block adds zero eigenvalues only; they sort last and are cut off here.
    return [p[: g.shape[-1]] for p, g in zip(spectra, grams)]


def spectra_of_grams(
    grams: list[torch.Tensor], device: str | torch.device | None = None
) -> list[torch.Tensor]:
    """:func:`spectrum_of_gram` of each matrix, batched per device where that pays.

    Args:
        grams: square float64 matrices (lower triangles read), of any sizes and devices.
        device: where the eigen-solver runs: ``None`` (default) = each matrix's own device;
            ``"cpu"`` moves them to the CPU first (float64 LAPACK), e.g. where a GPU's
            eigen-solver is slow.

    Returns:
        one spectrum per matrix, in order, on the device it was solved on.
    """
    moved = [g if device is None else g.to(device) for g in grams]
    out: dict[int, torch.Tensor] = {}
    cuda = [i for i, g in enumerate(moved) if g.device.type != "cpu"]
    for i in (i for i, g in enumerate(moved) if g.device.type == "cpu"):
        out[i] = spectrum_of_gram(moved[i])
    # Largest first; each group takes every matrix not much smaller than its largest one.
    order = sorted(cuda, key=lambda i: (str(moved[i].device), -moved[i].shape[-1]))
    while order:
        head = moved[order[0]]
        group = [i for i in order if moved[i].device == head.device
                 and moved[i].shape[-1] >= _PAD_RATIO * head.shape[-1]]
        order = [i for i in order if i not in group]
        out.update(zip(group, _padded_spectra([moved[i] for i in group])))
    return [out[i] for i in range(len(moved))]
