"""Log-det entropy of token states and the information gain of a new token (GEOMETRY.md, Q4).

Z holds T token states as rows (one text, one layer), by default each scaled to unit L2
norm and NOT centred (centring would make the entropy of a prefix depend on later tokens and
break the chain rule). With ridge parameter lam > 0:

* Gram form:        H(Z) = 1/2 ln det(lam I_T + Z Z^T)
* covariance form:  H(Z) = 1/2 ln det(I_d + Z^T Z / lam)  = Gram form - (T/2) ln lam

Adding a token z to the t previous rows Z_t raises the Gram-form entropy by

    IG = 1/2 ln(lam + rho),   rho = min_w ||z - Z_t^T w||^2 + lam ||w||^2
                                  = lam z^T (Z_t^T Z_t + lam I_d)^-1 z,

the optimal ridge objective of regressing the new token on the previous ones, with
``w* = (Z_t Z_t^T + lam I_t)^-1 Z_t z`` (Schur complement of the bordered Gram matrix). In
the covariance form the gain is ``1/2 ln(1 + rho / lam)``. ``half=False`` drops the 1/2 in
both. The Cholesky factor L of ``lam I_T + Z Z^T`` holds every prefix's gain at once:
``L_tt^2 = lam + rho_t``, which :func:`gain_curve` uses.

Which lam, layer, normalisation and 1/2 the paper (arXiv 2402.03471) used is unknown; all are
parameters (docs/CHOICES.md).
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

from mm_align.metrics.checks import real_matrix, unit_rows

__all__ = [
    "gain_curve",
    "information_gain",
    "logdet_entropy",
    "ridge_residual",
    "ridge_weights",
]

Form = Literal["gram", "covariance"]


def _check_lam(lam: float) -> None:
    if not (isinstance(lam, numbers.Real) and math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite number > 0, got {lam!r}")


def _rows(Z: torch.Tensor, what: str, normalize_rows: bool, min_rows: int = 1) -> torch.Tensor:
    X = real_matrix(Z, what, min_rows=min_rows, unit="token(s)")
    return unit_rows(X, what) if normalize_rows and X.shape[0] > 0 else X


def _prev_and_new(
    prev: torch.Tensor, new: torch.Tensor, normalize_rows: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(new, torch.Tensor) or new.ndim != 1:
        raise ValueError(
            f"new: expected a 1-D tensor (d,), got {getattr(new, 'shape', type(new).__name__)}"
        )
    Zt = _rows(prev, "prev", normalize_rows, min_rows=0)
    z = _rows(new.unsqueeze(0), "new", normalize_rows)[0]
    if Zt.shape[1] != z.shape[0]:
        raise ValueError(f"prev has d = {Zt.shape[1]} but new has d = {z.shape[0]}")
    return Zt, z


def _form_shift(form: Form, lam: float) -> float:
    """What the covariance form subtracts per token from the Gram form (before the 1/2)."""
    if form == "gram":
        return 0.0
    if form == "covariance":
        return math.log(lam)
    raise ValueError(f"unknown form {form!r}; choose 'gram' or 'covariance'")


def logdet_entropy(
    Z: torch.Tensor,
    lam: float = 1.0,
    form: Form = "gram",
    half: bool = True,
    normalize_rows: bool = True,
) -> float:
    """Log-det entropy of ``(T, d)`` token states, in nats (see the module docstring).

    Computed from the smaller of ``lam I_T + Z Z^T`` and ``lam I_d + Z^T Z`` by Cholesky.

    >>> Z = torch.eye(3)  # three orthonormal tokens: 1/2 ln (1 + 1)^3
    >>> round(logdet_entropy(Z), 12) == round(1.5 * math.log(2), 12)
    True
    """
    _check_lam(lam)
    X = _rows(Z, "Z", normalize_rows)
    (T, d), shift = X.shape, _form_shift(form, lam)
    small = X @ X.T if T <= d else X.T @ X
    chol = torch.linalg.cholesky(small + lam * torch.eye(small.shape[0], dtype=torch.float64))
    logdet = 2 * float(chol.diagonal().log().sum())
    if T > d:  # ln det(lam I_T + Z Z^T) = ln det(lam I_d + Z^T Z) + (T - d) ln lam
        logdet += (T - d) * math.log(lam)
    value = logdet - T * shift
    return value / 2 if half else value


def ridge_weights(
    prev: torch.Tensor, new: torch.Tensor, lam: float = 1.0, normalize_rows: bool = True
) -> torch.Tensor:
    """Ridge coefficients ``w* = (Z_t Z_t^T + lam I)^-1 Z_t z`` of the new token on the previous.

    Args:
        prev: ``(t, d)`` previous token states (t may be 0); new: ``(d,)``.

    Returns:
        float64 ``(t,)``: one weight per previous token.

    >>> ridge_weights(torch.tensor([[1.0, 0.0]]), torch.tensor([1.0, 0.0])).tolist()
    [0.5]
    """
    _check_lam(lam)
    Zt, z = _prev_and_new(prev, new, normalize_rows)
    gram = Zt @ Zt.T + lam * torch.eye(Zt.shape[0], dtype=torch.float64)
    return torch.linalg.solve(gram, Zt @ z) if Zt.shape[0] else Zt.new_zeros(0)


def ridge_residual(
    prev: torch.Tensor, new: torch.Tensor, lam: float = 1.0, normalize_rows: bool = True
) -> float:
    """Optimal ridge objective rho = ``||z - Z_t^T w*||^2 + lam ||w*||^2`` (explicit solve).

    Between 0 and ``||z||^2`` (1 for unit rows); ``||z||^2`` when z is orthogonal to every
    previous token; tends to 0 with lam when z lies in their span.

    >>> ridge_residual(torch.tensor([[1.0, 0.0]]), torch.tensor([1.0, 0.0]))
    0.5
    """
    Zt, z = _prev_and_new(prev, new, normalize_rows)
    w = ridge_weights(Zt, z, lam, normalize_rows=False)
    return float((z - Zt.T @ w).square().sum() + lam * w.square().sum())


def information_gain(
    prev: torch.Tensor,
    new: torch.Tensor,
    lam: float = 1.0,
    form: Form = "gram",
    half: bool = True,
    normalize_rows: bool = True,
) -> float:
    """Entropy gained by appending ``new`` to ``prev``: ``1/2 ln(lam + rho)`` (Gram form).

    Equals ``logdet_entropy(cat(prev, new)) - logdet_entropy(prev)`` with the same settings;
    computed from the explicit ridge solve (:func:`ridge_residual`). Gram form >= 1/2 ln lam.

    >>> round(information_gain(torch.tensor([[1.0, 0.0]]), torch.tensor([0.0, 1.0])), 12)
    0.34657359028
    """
    _check_lam(lam)
    shift = _form_shift(form, lam)
    value = math.log(lam + ridge_residual(prev, new, lam, normalize_rows)) - shift
    return value / 2 if half else value


def gain_curve(
    Z: torch.Tensor,
    lam: float = 1.0,
    form: Form = "gram",
    half: bool = True,
    normalize_rows: bool = True,
) -> list[float]:
    """Per-token information gain along a text: entry t = gain of token t over tokens < t.

    Args:
        Z: ``(T, d)`` token states of one text, in order.

    Returns:
        T floats; entry 0 is the first token's gain over the empty context
        (rho = ``||z_0||^2``), so ``sum(curve) == logdet_entropy(Z)`` with the same settings.
        One Cholesky factorisation: ``L_tt^2 = lam + rho_t``.

    >>> [round(g, 6) for g in gain_curve(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))]
    [0.346574, 0.202733]
    """
    _check_lam(lam)
    X = _rows(Z, "Z", normalize_rows)
    shift = _form_shift(form, lam)
    chol = torch.linalg.cholesky(X @ X.T + lam * torch.eye(X.shape[0], dtype=torch.float64))
    gains = 2 * chol.diagonal().log() - shift
    return (gains / 2 if half else gains).tolist()
