"""Lasso token attribution (GEOMETRY.md Q5) against its defining properties and NumPy OLS;
selection helpers; KL and top-1 agreement against independent NumPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mm_align.metrics.attribution import (
    delete_positions,
    keep_only_positions,
    kl_divergence,
    lasso_alpha_max,
    lasso_token_weights,
    random_selection,
    selection_r2,
    support,
    top1_agreement,
    top_k,
)
from tests.helpers import unit_rows


def _states(seed: int, T: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, d, generator=g, dtype=torch.float64)


def test_alpha_max_gives_zero_weights_and_below_it_does_not() -> None:
    S = _states(0, 12, 64)
    X, y = unit_rows(S.numpy())[:-1].T, unit_rows(S.numpy())[-1]
    amax = lasso_alpha_max(S)
    assert amax == pytest.approx(np.abs(X.T @ y).max() / 64, rel=1e-12)
    assert torch.count_nonzero(lasso_token_weights(S, alpha=amax * 1.0001)) == 0
    assert torch.count_nonzero(lasso_token_weights(S, alpha=amax * 0.9)) >= 1


def test_small_alpha_approaches_ordinary_least_squares() -> None:
    S = _states(1, 9, 40)  # T - 1 = 8 <= d = 40
    U = unit_rows(S.numpy())
    ols = np.linalg.lstsq(U[:-1].T, U[-1], rcond=None)[0]
    w = lasso_token_weights(S, alpha=1e-9)
    np.testing.assert_allclose(w.numpy(), ols, atol=1e-5)
    w_raw = lasso_token_weights(S, alpha=1e-9, normalize_rows=False)
    ols_raw = np.linalg.lstsq(S.numpy()[:-1].T, S.numpy()[-1], rcond=None)[0]
    np.testing.assert_allclose(w_raw.numpy(), ols_raw, atol=1e-4)


def test_exact_two_token_combination_is_recovered() -> None:
    S = _states(2, 15, 128)
    S[-1] = 0.7 * S[3] / S[3].norm() - 0.5 * S[9] / S[9].norm()
    w = lasso_token_weights(S, alpha=1e-4)
    assert top_k(w.abs(), 2) == [3, 9]
    assert set(support(w, tol=1e-3)) == {3, 9}
    scale = float(S[-1].norm())  # normalize_rows divides the target by its norm
    assert w[3].item() == pytest.approx(0.7 / scale, rel=0.05)
    assert w[9].item() == pytest.approx(-0.5 / scale, rel=0.05)
    assert selection_r2(S, [3, 9]) == pytest.approx(1.0, abs=1e-12)


def test_weights_are_invariant_to_rotations_of_the_hidden_space() -> None:
    S = _states(3, 10, 32)
    q = torch.linalg.qr(_states(4, 32, 32))[0]
    w, w_rot = lasso_token_weights(S, alpha=2e-3), lasso_token_weights(S @ q, alpha=2e-3)
    assert torch.allclose(w, w_rot, atol=1e-7)


def test_intercept_absorbs_a_common_offset() -> None:
    S = _states(5, 6, 50)
    S[-1] = S[1] + 0.0
    shifted = S + 4.0
    w = lasso_token_weights(shifted, alpha=1e-8, fit_intercept=True, normalize_rows=False)
    assert top_k(w.abs(), 1) == [1]


def test_selection_r2_matches_numpy_and_is_monotone() -> None:
    S = _states(6, 20, 30)
    U = unit_rows(S.numpy())
    X, y = U[:-1].T, U[-1]
    for sel in ([0], [4, 2], [1, 5, 7, 11]):
        w = np.linalg.lstsq(X[:, sel], y, rcond=None)[0]
        want = 1 - ((y - X[:, sel] @ w) ** 2).sum() / (y**2).sum()
        assert selection_r2(S, sel) == pytest.approx(want, rel=1e-10)
    assert selection_r2(S, []) == 0.0
    assert selection_r2(S, [1]) <= selection_r2(S, [1, 2]) <= selection_r2(S, [1, 2, 3])


def test_selection_helpers() -> None:
    assert top_k(torch.tensor([0.3, 0.9, 0.3, 0.1]), 3) == [1, 0, 2]
    assert top_k(torch.tensor([1.0, 2.0]), 0) == []
    assert support(torch.tensor([0.0, 1.0, -2.0, 0.0])) == [1, 2]
    r = random_selection(50, 7, seed=3)
    assert r == sorted(r) and len(set(r)) == 7 and all(0 <= i < 50 for i in r)
    assert random_selection(50, 7, seed=3) == r and random_selection(50, 7, seed=4) != r
    assert keep_only_positions(5, []) == [4]
    assert delete_positions(5, [0, 1, 2, 3]) == [4]
    assert keep_only_positions(8, [6, 2]) + [] == [2, 6, 7]
    assert sorted(set(delete_positions(8, [6, 2])) | {2, 6}) == list(range(8))


def _ref_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p, q = softmax(p_logits), softmax(q_logits)
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


def test_kl_divergence_matches_numpy_for_every_input_kind() -> None:
    rng = np.random.default_rng(7)
    pl, ql = rng.standard_normal((4, 1000)) * 3, rng.standard_normal((4, 1000)) * 3
    want = _ref_kl(pl, ql)
    P, Q = torch.from_numpy(pl), torch.from_numpy(ql)
    assert kl_divergence(P, Q) == pytest.approx(want, rel=1e-10)
    assert kl_divergence(
        torch.log_softmax(P, -1), torch.log_softmax(Q, -1), inputs="log_probs"
    ) == pytest.approx(want, rel=1e-10)
    assert kl_divergence(
        torch.softmax(P, -1), torch.softmax(Q, -1), inputs="probs"
    ) == pytest.approx(want, rel=1e-10)
    assert kl_divergence(P[0], Q[0]) == pytest.approx(_ref_kl(pl[0], ql[0]), rel=1e-10)
    assert kl_divergence(P.float(), Q.float()) == pytest.approx(
        _ref_kl(P.float().double().numpy(), Q.float().double().numpy()), rel=1e-9
    )


def test_kl_properties() -> None:
    p = torch.tensor([0.2, 0.3, 0.5])
    assert kl_divergence(p, p, inputs="probs") == 0.0
    assert kl_divergence(
        torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), inputs="probs"
    ) == pytest.approx(math.log(2))
    assert (
        kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]), inputs="probs")
        == math.inf
    )
    # unnormalised probabilities are renormalised
    assert kl_divergence(2 * p, p, inputs="probs") == pytest.approx(0.0, abs=1e-15)
    # logits: a constant shift is the same distribution
    logits = torch.randn(100, dtype=torch.float64)
    assert kl_divergence(logits, logits + 5) == pytest.approx(0.0, abs=1e-12)


def test_top1_agreement() -> None:
    p = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    q = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0], [0.0, 0.0, 9.0]])
    assert top1_agreement(p, q) == pytest.approx(2 / 3)
    assert top1_agreement(p[0], q[0]) == 1.0
    assert top1_agreement(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0])) == 1.0  # first max


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lasso_token_weights(torch.randn(1, 8), alpha=0.1), "at least 1 earlier"),
        (lambda: lasso_token_weights(torch.randn(8), alpha=0.1), "2-D"),
        (lambda: lasso_token_weights(torch.randn(4, 8), alpha=0.0), "alpha must be"),
        (lambda: lasso_token_weights(torch.zeros(4, 8), alpha=0.1), "all-zero rows"),
        (lambda: lasso_alpha_max(torch.full((3, 2), float("nan"))), "NaN or Inf"),
        (lambda: selection_r2(torch.randn(4, 8), [3]), r"in \[0, 3\)"),
        (lambda: selection_r2(torch.randn(4, 8), [1, 1]), "duplicates"),
        (lambda: top_k(torch.tensor([1.0, 2.0]), 3), "k must be"),
        (lambda: random_selection(3, 4, seed=0), "k must be"),
        (lambda: top_k(torch.tensor([1.0, 2.0]), 1.5), "k must be"),
        (lambda: keep_only_positions(4, [3]), r"in \[0, 3\)"),
        (lambda: kl_divergence(torch.randn(3), torch.randn(4)), "same shape"),
        (
            lambda: kl_divergence(
                torch.tensor([0.5, -0.5]), torch.tensor([0.5, 0.5]), inputs="probs"
            ),
            ">= 0",
        ),
        (lambda: kl_divergence(torch.randn(3), torch.randn(3), inputs="odds"), "unknown inputs"),
        (lambda: kl_divergence(torch.randn(2, 2, 2), torch.randn(2, 2, 2)), r"\(V,\) or \(n, V\)"),
        (lambda: top1_agreement(torch.randn(3), torch.randn(2)), "same shape"),
    ],
)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
