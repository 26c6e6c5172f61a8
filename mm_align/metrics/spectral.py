"""Spectral quantities of one sample's representation matrix (Diff-eRank, section 3).

All functions take ``R`` of shape ``(N, d)``: N token vectors of hidden size d from ONE
sample, in any floating dtype on any device. The arithmetic is done in float64 on R's
device, so half-precision model outputs are accepted and round-off does not leak into the
entropy.

Procedure (identical to the paper and its official code, up to floating point):

1. centre the rows: ``R - R.mean(0)``;
2. scale every centred row to unit L2 norm, giving ``Z``;
3. covariance ``Z^T Z / N`` (d x d), trace-normalised;
4. entropy ``H = -sum(l * log l)`` of its eigenvalues ``l`` (natural log, 0 log 0 = 0);
5. ``eRank = exp(H)``.

Steps 3-4 use whichever of ``Z^T Z`` (d x d) or ``Z Z^T`` (N x N) is smaller: both have the
same non-zero eigenvalues, and a symmetric eigen-solver on the smaller Gram matrix is
orders of magnitude cheaper than the official SVD of the d x d matrix when N << d. The Gram
products and the batched eigen-solver are in :mod:`mm_align.metrics.gram`; the image stage's
spectrum from the joint stage's product in :mod:`mm_align.metrics.nested`.

Rows that vanish after centring (a token identical to the mean, e.g. every row equal) have
no direction; the official code turns them into NaN and poisons the whole result. Here they
are dropped with a :class:`VanishingRowsWarning`, and a ``ValueError`` is raised only when
fewer than two rows remain.
"""

from __future__ import annotations

import math

import torch

from mm_align.metrics.gram import lower_gram, spectra_of_grams
from mm_align.warn import warn

__all__ = [
    "VanishingRowsWarning",
    "erank",
    "float64_rows",
    "gram_of_rows",
    "kept_rows",
    "matrix_entropy",
    "normalized_rows",
    "spectral_entropy",
    "spectrum",
]


class VanishingRowsWarning(UserWarning):
    """Some rows were dropped because they are zero after centring."""


# A centred row counts as vanished when its norm is below this many float64 epsilons of
# the largest row norm before centring (scale-free, so it works for any unit of R).
_VANISH_RTOL = 64 * torch.finfo(torch.float64).eps


def float64_rows(R: torch.Tensor) -> torch.Tensor:
    """Validate ``R`` (N x d) and return it as float64 on its device (a copy if R is not).

    Raises:
        ValueError: R is not a 2-D real floating tensor, has fewer than 2 rows or 0 columns,
            or holds NaN or Inf.
    """
    if not isinstance(R, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (N, d), got {type(R).__name__}")
    if R.ndim != 2:
        raise ValueError(
            f"expected a 2-D tensor of shape (N tokens, d hidden), got shape {tuple(R.shape)}"
        )
    if R.is_complex() or R.dtype == torch.bool:
        raise ValueError(f"expected a real-valued tensor, got dtype {R.dtype}")
    n, d = R.shape
    if d == 0:
        raise ValueError("the representation has hidden size d = 0")
    if n < 2:
        raise ValueError(
            f"eRank needs at least 2 token vectors, got N = {n}: one centred vector is zero "
            "and has no spectrum"
        )
    X = R.detach().to(torch.float64)
    finite = torch.isfinite(X)
    if not bool(finite.all()):
        bad_rows = (~finite).any(dim=1).nonzero().flatten()
        shown = ", ".join(str(int(i)) for i in bad_rows[:5])
        more = "" if len(bad_rows) <= 5 else f" and {len(bad_rows) - 5} more"
        raise ValueError(
            f"the representation holds NaN or Inf values in {len(bad_rows)} of {n} rows "
            f"(rows {shown}{more}); check the model dtype (fp16 overflow) and the input"
        )
    return X


def kept_rows(centred: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Norms of the ``centred`` rows of ``X`` and which of them do not vanish.

    Args:
        centred: ``(N, d)`` float64, X minus its row mean.
        X: ``(N, d)`` float64 before centring (its largest row norm sets the scale).

    Returns:
        ``(norms, keep)``: ``(N,)`` float64 norms and ``(N,)`` bool, True for rows whose norm
        exceeds ``_VANISH_RTOL`` times the largest norm of X's rows. Warns
        :class:`VanishingRowsWarning` when some are dropped.

    Raises:
        ValueError: fewer than 2 rows are kept.
    """
    n = centred.shape[0]
    norms = torch.linalg.vector_norm(centred, dim=1)
    keep = norms > _VANISH_RTOL * torch.linalg.vector_norm(X, dim=1).max()
    n_keep = int(keep.sum())
    if n_keep < 2:
        raise ValueError(
            f"only {n_keep} of {n} rows differ from the row mean: all token vectors are "
            "(nearly) identical, so there is no spectrum to measure"
        )
    if n_keep < n:
        warn(f"dropped {n - n_keep} of {n} rows that are zero after centring", VanishingRowsWarning)
    return norms, keep


def normalized_rows(R: torch.Tensor) -> torch.Tensor:
    """Validate ``R`` (N x d), centre it and scale each row to unit norm.

    Returns:
        float64 tensor ``Z`` of shape ``(N', d)`` on R's device, N' <= N after dropping
        rows that vanish after centring.

    Raises:
        ValueError: see :func:`float64_rows`, or fewer than 2 rows left after centring.
    """
    X = float64_rows(R)
    Xc = X - X.mean(dim=0, keepdim=True)
    norms, keep = kept_rows(Xc, X)
    if not bool(keep.all()):
        Xc, norms = Xc[keep], norms[keep]
    return Xc / norms.unsqueeze(1)


def gram_of_rows(Z: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The smaller of ``Z Z^T / N`` (N x N) and ``Z^T Z / N`` (d x d) for unit rows ``Z``.

    Both have the spectrum of the sample's covariance (the same non-zero eigenvalues); only
    the lower triangle is computed (:func:`~mm_align.metrics.gram.lower_gram`).

    Returns:
        ``(m, m)`` float64, ``m = min(N, d)``, trace 1.
    """
    n, d = Z.shape
    return lower_gram(Z if n <= d else Z.T, dtype) / n


def spectrum(R: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """Normalised eigenvalues of the covariance of the unit-normalised, centred rows of R.

    Args:
        R: ``(N, d)`` hidden states of one sample.
        device: where the eigen-solver runs (``None``: R's device; ``"cpu"``: float64
            LAPACK whatever R's device). The Gram product always runs on R's device.

    Returns:
        float64 tensor of ``min(N', d)`` eigenvalues, descending, each >= 0, summing to 1
        (N' = rows kept after centring; zero eigenvalues included).
    """
    return spectra_of_grams([gram_of_rows(normalized_rows(R))], device)[0]


def spectral_entropy(p: torch.Tensor) -> float:
    """Shannon entropy ``-sum p log p`` (nats, 0 log 0 = 0) of a normalised spectrum, such as
    the output of :func:`spectrum`."""
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def matrix_entropy(R: torch.Tensor, normalized: bool = False) -> float:
    """Von Neumann entropy H of the trace-normalised covariance of R, in nats.

    Args:
        R: ``(N, d)`` hidden states of one sample.
        normalized: divide by ``log(d)`` (d = hidden size), the "matrix entropy" of the
            paper's v1, which lies in [0, 1].
    """
    h = spectral_entropy(spectrum(R))
    if normalized:
        d = R.shape[1]
        return h / math.log(d) if d > 1 else 0.0
    return h


def erank(R: torch.Tensor) -> float:
    """Effective rank ``exp(H)`` of one sample's ``(N, d)`` representation.

    Lies in ``[1, min(N - 1, d)]``: centring removes one degree of freedom.
    """
    return math.exp(matrix_entropy(R))
