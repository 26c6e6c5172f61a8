"""Which earlier tokens carry the last token's state? Lasso attribution and the comparison
metrics of an intervention (GEOMETRY.md, Q5-Q6). Pure functions only: running the model
(head-averaged attention, keep-only / delete-k forward passes) is the pipeline's job.

Lasso (the procedure is the project's proposal; the paper's is not public):

* target ``y = z_T`` (the last token's state), design ``X = [z_1 ... z_{T-1}]`` of shape
  ``(d, T-1)``: the hidden dimensions are the samples, the previous tokens the features;
* ``w* = argmin 1/(2d) ||y - X w||^2 + alpha ||w||_1`` (scikit-learn's ``Lasso``,
  coordinate descent), no intercept and no feature standardisation by default; rows are
  unit-normalised first (``normalize_rows``), so alpha is comparable across layers;
* token scores ``|w*_i|``; selection by top-k or by the support ``w*_i != 0``;
  ``alpha >= lasso_alpha_max(states)`` gives ``w* = 0``.

Comparison of next-token distributions (natural log): ``KL(p_full || p_subset)`` and top-1
agreement, each averaged over rows when given a batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

__all__ = [
    "delete_positions",
    "keep_only_positions",
    "kl_divergence",
    "lasso_alpha_max",
    "lasso_token_weights",
    "random_selection",
    "selection_r2",
    "support",
    "top1_agreement",
    "top_k",
]


def _design(states: torch.Tensor, normalize_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (d, T-1) and ``y`` (d,) in float64 NumPy from ``(T, d)`` token states."""
    if not isinstance(states, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor of shape (T, d), got {type(states).__name__}")
    if (
        states.ndim != 2
        or states.is_complex()
        or states.dtype == torch.bool
        or states.shape[1] == 0
    ):
        raise ValueError(
            "expected a real 2-D tensor (T tokens, d > 0), "
            f"got {states.dtype} {tuple(states.shape)}"
        )
    if states.shape[0] < 2:
        raise ValueError(
            "attribution needs the last token and at least 1 earlier one, "
            f"got T = {states.shape[0]}"
        )
    Z = states.detach().to(torch.float64).cpu().numpy()
    if not np.isfinite(Z).all():
        raise ValueError("the token states hold NaN or Inf values")
    if normalize_rows:
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        if not (norms > 0).all():
            raise ValueError("the token states have all-zero rows, which cannot be unit-normalised")
        Z = Z / norms
    return np.ascontiguousarray(Z[:-1].T), Z[-1]


def lasso_alpha_max(states: torch.Tensor, normalize_rows: bool = True) -> float:
    """Smallest alpha with an all-zero Lasso solution: ``max_i |x_i . y| / d`` (no intercept).

    >>> lasso_alpha_max(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    0.5
    """
    X, y = _design(states, normalize_rows)
    return float(np.abs(X.T @ y).max() / X.shape[0])


def lasso_token_weights(
    states: torch.Tensor,
    alpha: float,
    fit_intercept: bool = False,
    normalize_rows: bool = True,
    max_iter: int = 100_000,
    tol: float = 1e-10,
) -> torch.Tensor:
    """Lasso weights of the last token's state on the previous tokens' states.

    Args:
        states: ``(T, d)`` token states of one text at one layer, T >= 2.
        alpha: L1 weight in scikit-learn's scaling (objective divided by 2d); see
            :func:`lasso_alpha_max` for the scale.
        fit_intercept: let an intercept over hidden dimensions absorb a common offset.
        normalize_rows: unit-normalise every token state first.
        max_iter, tol: coordinate-descent limits (scikit-learn's meaning).

    Returns:
        float64 ``(T-1,)``: weight of token i (0-based) in predicting token T-1; scores are
        ``weights.abs()``.

    >>> S = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    >>> [round(w, 4) for w in lasso_token_weights(S, alpha=1e-6).tolist()]
    [0.6, 0.8]
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha}")
    from sklearn.linear_model import Lasso  # lazy: keep `import mm_align.metrics` light

    X, y = _design(states, normalize_rows)
    model = Lasso(alpha=alpha, fit_intercept=fit_intercept, max_iter=max_iter, tol=tol)
    model.fit(X, y)
    return torch.from_numpy(np.asarray(model.coef_, dtype=np.float64).copy())


def selection_r2(
    states: torch.Tensor, selected: Sequence[int], normalize_rows: bool = True
) -> float:
    """Uncentred R^2 of the last state regressed (OLS, no intercept) on the selected tokens.

    ``1 - ||y - X_S w||^2 / ||y||^2`` with ``X_S`` the selected previous tokens' states;
    0 for an empty selection, 1 when y lies in their span.

    >>> round(selection_r2(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), [0]), 6)
    0.36
    """
    X, y = _design(states, normalize_rows)
    idx = _indices(selected, X.shape[1])
    if not idx:
        return 0.0
    Xs = X[:, idx]
    w = np.linalg.lstsq(Xs, y, rcond=None)[0]
    return float(1.0 - np.sum((y - Xs @ w) ** 2) / np.sum(y**2))


def _indices(selected: Sequence[int], n: int) -> list[int]:
    idx = [int(i) for i in selected]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise ValueError(f"selected positions must be in [0, {n}), got {bad[:5]}")
    if len(set(idx)) != len(idx):
        raise ValueError("selected positions contain duplicates")
    return idx


def top_k(scores: torch.Tensor, k: int) -> list[int]:
    """Positions of the k largest scores, largest first, ties to the lower position.

    >>> top_k(torch.tensor([0.1, 0.5, 0.5, 0.2]), 2)
    [1, 2]
    """
    s = torch.as_tensor(scores).detach().to(torch.float64).flatten()
    if not (isinstance(k, numbers.Integral) and 0 <= k <= s.numel()):
        raise ValueError(f"k must be in [0, {s.numel()}], got {k}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("scores hold NaN or Inf values")
    return torch.sort(s, descending=True, stable=True).indices[:k].tolist()


def support(weights: torch.Tensor, tol: float = 0.0) -> list[int]:
    """Positions with ``|w_i| > tol`` (the Lasso's selected tokens), ascending.

    >>> support(torch.tensor([0.0, -0.3, 0.0, 1e-12]), tol=1e-9)
    [1]
    """
    w = torch.as_tensor(weights).detach().flatten()
    return (w.abs() > tol).nonzero().flatten().tolist()


def random_selection(n_candidates: int, k: int, seed: int) -> list[int]:
    """k distinct positions of ``range(n_candidates)`` drawn uniformly, ascending; the random
    baseline selector (``numpy.random.default_rng(seed)``).

    >>> random_selection(10, 3, seed=0) == random_selection(10, 3, seed=0)
    True
    """
    if not (isinstance(k, numbers.Integral) and 0 <= k <= n_candidates):
        raise ValueError(f"k must be in [0, {n_candidates}], got {k}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_candidates, size=k, replace=False))


def keep_only_positions(T: int, selected: Sequence[int]) -> list[int]:
    """Positions kept by the keep-only intervention: the selected earlier tokens plus the
    last one (T-1), in their original order.

    >>> keep_only_positions(6, [3, 0])
    [0, 3, 5]
    """
    return sorted(_indices(selected, T - 1)) + [T - 1]


def delete_positions(T: int, selected: Sequence[int]) -> list[int]:
    """Positions kept by the delete-k intervention: every token but the selected earlier
    ones (the last token always stays), in order.

    >>> delete_positions(6, [3, 0])
    [1, 2, 4, 5]
    """
    drop = set(_indices(selected, T - 1))
    return [i for i in range(T) if i not in drop]


Inputs = Literal["logits", "log_probs", "probs"]


def _log_probs(x: torch.Tensor, inputs: Inputs, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim not in (1, 2) or x.shape[-1] < 1:
        raise ValueError(
            f"{what}: expected a tensor (V,) or (n, V), got {getattr(x, 'shape', type(x).__name__)}"
        )
    X = x.detach().to(torch.float64)
    if inputs == "logits":
        if torch.isnan(X).any() or torch.isposinf(X).any():
            raise ValueError(f"{what}: logits hold NaN or +Inf")
        return torch.log_softmax(X, dim=-1)
    if inputs == "log_probs":
        return torch.log_softmax(X, dim=-1)  # renormalises round-off
    if inputs == "probs":
        if not bool(torch.isfinite(X).all()) or bool((X < 0).any()):
            raise ValueError(f"{what}: probabilities must be finite and >= 0")
        total = X.sum(dim=-1, keepdim=True)
        if not bool((total > 0).all()):
            raise ValueError(f"{what}: a distribution sums to 0")
        return (X / total).log()
    raise ValueError(f"unknown inputs {inputs!r}; choose 'logits', 'log_probs' or 'probs'")


def kl_divergence(p: torch.Tensor, q: torch.Tensor, inputs: Inputs = "logits") -> float:
    """``KL(p || q) = sum_v p_v (ln p_v - ln q_v)`` in nats, averaged over rows.

    Args:
        p: reference next-token distribution(s) (full context), ``(V,)`` or ``(n, V)``.
        q: distribution(s) after the intervention, same shape.
        inputs: what p and q hold; probabilities are renormalised to sum to 1.

    Returns:
        >= 0; ``inf`` when q gives 0 to a token p does not.

    >>> kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75]), inputs="probs") > 0
    True
    """
    if p.shape != q.shape:
        raise ValueError(f"p and q need the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    lp, lq = _log_probs(p, inputs, "p"), _log_probs(q, inputs, "q")
    pp = lp.exp()
    terms = torch.where(pp > 0, pp * (lp - lq), torch.zeros_like(pp))
    kl = terms.sum(dim=-1).clamp_min(0.0)
    return float(kl.mean())


def top1_agreement(p: torch.Tensor, q: torch.Tensor) -> float:
    """Fraction of rows whose most likely token agrees (argmax, first index on ties).

    Works on logits, log-probabilities or probabilities alike (argmax is unchanged).

    >>> p = torch.tensor([[0.1, 2.0], [3.0, 0.0]])
    >>> top1_agreement(p, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    0.5
    """
    if not isinstance(p, torch.Tensor) or not isinstance(q, torch.Tensor) or p.shape != q.shape:
        raise ValueError("p and q must be tensors of the same shape (V,) or (n, V)")
    if p.ndim not in (1, 2) or p.shape[-1] < 1:
        raise ValueError(f"expected (V,) or (n, V), got {tuple(p.shape)}")
    if torch.isnan(p).any() or torch.isnan(q).any():
        raise ValueError("p or q holds NaN")
    return float((p.argmax(dim=-1) == q.argmax(dim=-1)).to(torch.float64).mean())
