"""Log-det entropy and the ridge identity of the information gain (GEOMETRY.md Q4): the Gram
form, the covariance form and an explicit ridge solve agree; monotonicity; the orthogonal and
in-span limits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mm_align.metrics.info_gain import (
    gain_curve,
    information_gain,
    logdet_entropy,
    ridge_residual,
    ridge_weights,
)
from tests.helpers import unit_rows


def _gram_h(Z: np.ndarray, lam: float) -> float:
    return 0.5 * np.linalg.slogdet(lam * np.eye(Z.shape[0]) + Z @ Z.T)[1]


def _cov_h(Z: np.ndarray, lam: float) -> float:
    return 0.5 * np.linalg.slogdet(np.eye(Z.shape[1]) + Z.T @ Z / lam)[1]


def _ridge_lstsq(Zt: np.ndarray, z: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Ridge as least squares on the augmented system [Z_t^T; sqrt(lam) I] w = [z; 0]."""
    t, _d = Zt.shape
    A = np.vstack([Zt.T, math.sqrt(lam) * np.eye(t)])
    w = np.linalg.lstsq(A, np.concatenate([z, np.zeros(t)]), rcond=None)[0]
    return w, float(((z - Zt.T @ w) ** 2).sum() + lam * (w**2).sum())


def _tokens(seed: int, T: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return unit_rows(
        rng.standard_normal((T, 4)) @ rng.standard_normal((4, d))
        + 0.3 * rng.standard_normal((T, d))
    )


@pytest.mark.parametrize(
    ("T", "d", "lam"), [(12, 32, 1.0), (40, 16, 0.1), (8, 8, 3.0), (25, 64, 0.01)]
)
def test_gram_covariance_and_ridge_forms_agree(T: int, d: int, lam: float) -> None:
    Z = _tokens(T * d, T, d)
    Zt, z = Z[:-1], Z[-1]
    w_ref, rho_ref = _ridge_lstsq(Zt, z, lam)
    # explicit ridge solve vs the augmented least-squares solve vs the covariance formula
    rho = ridge_residual(torch.from_numpy(Zt), torch.from_numpy(z), lam)
    assert rho == pytest.approx(rho_ref, rel=1e-8)
    assert rho == pytest.approx(lam * z @ np.linalg.solve(Zt.T @ Zt + lam * np.eye(d), z), rel=1e-8)
    np.testing.assert_allclose(
        ridge_weights(torch.from_numpy(Zt), torch.from_numpy(z), lam).numpy(),
        w_ref,
        rtol=1e-8,
        atol=1e-10,
    )
    # gain = difference of log-dets, in both forms
    gram_gain = _gram_h(Z, lam) - _gram_h(Zt, lam)
    cov_gain = _cov_h(Z, lam) - _cov_h(Zt, lam)
    prev, new = torch.from_numpy(Zt), torch.from_numpy(z)
    assert information_gain(prev, new, lam) == pytest.approx(gram_gain, abs=1e-8)
    assert information_gain(prev, new, lam) == pytest.approx(
        0.5 * math.log(lam + rho_ref), abs=1e-8
    )
    assert information_gain(prev, new, lam, form="covariance") == pytest.approx(cov_gain, abs=1e-8)
    assert information_gain(prev, new, lam, form="covariance", half=False) == pytest.approx(
        math.log(1 + rho_ref / lam), abs=1e-8
    )
    # the entropies themselves
    assert logdet_entropy(torch.from_numpy(Z), lam) == pytest.approx(_gram_h(Z, lam), abs=1e-8)
    assert logdet_entropy(torch.from_numpy(Z), lam, form="covariance") == pytest.approx(
        _cov_h(Z, lam), abs=1e-8
    )
    assert logdet_entropy(torch.from_numpy(Z), lam, half=False) == pytest.approx(
        2 * _gram_h(Z, lam), abs=1e-8
    )


@pytest.mark.parametrize(("T", "d"), [(30, 64), (50, 10)])
def test_gain_curve_matches_prefix_log_dets_and_sums_to_the_entropy(T: int, d: int) -> None:
    Z = _tokens(T + d, T, d)
    lam = 0.5
    curve = gain_curve(torch.from_numpy(Z), lam)
    want = [_gram_h(Z[: t + 1], lam) - (_gram_h(Z[:t], lam) if t else 0.0) for t in range(T)]
    np.testing.assert_allclose(curve, want, rtol=0, atol=1e-8)
    assert sum(curve) == pytest.approx(logdet_entropy(torch.from_numpy(Z), lam), abs=1e-8)
    cov_curve = gain_curve(torch.from_numpy(Z), lam, form="covariance")
    assert sum(cov_curve) == pytest.approx(
        logdet_entropy(torch.from_numpy(Z), lam, form="covariance"), abs=1e-8
    )
    for t in (1, T // 2, T - 1):
        assert curve[t] == pytest.approx(
            information_gain(torch.from_numpy(Z[:t]), torch.from_numpy(Z[t]), lam), abs=1e-8
        )


def test_gain_is_at_least_half_log_lambda_and_rho_in_range() -> None:
    Z = torch.from_numpy(_tokens(1, 40, 12))
    for lam in (1e-3, 0.1, 1.0, 10.0):
        curve = gain_curve(Z, lam)
        assert min(curve) >= 0.5 * math.log(lam) - 1e-12
        assert max(curve) <= 0.5 * math.log(lam + 1) + 1e-12  # rho <= ||z||^2 = 1
        assert min(gain_curve(Z, lam, form="covariance")) >= -1e-12


def test_rho_never_increases_with_more_previous_tokens() -> None:
    Z = torch.from_numpy(_tokens(2, 30, 16))
    z = Z[-1]
    rhos = [ridge_residual(Z[:t], z, 0.2) for t in range(0, 29)]
    assert rhos[0] == pytest.approx(1.0)  # no regressors: ||z||^2
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(rhos))
    assert rhos[-1] < rhos[0]


def test_orthogonal_new_token_keeps_its_full_norm() -> None:
    q = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64))[0]
    prev, z = 3 * q[:6], 2.5 * q[7]
    for lam in (1e-6, 1.0, 50.0):
        assert ridge_residual(prev, z, lam, normalize_rows=False) == pytest.approx(6.25, rel=1e-10)
        assert ridge_residual(prev, z, lam) == pytest.approx(1.0, rel=1e-10)
        assert information_gain(prev, z, lam) == pytest.approx(0.5 * math.log(lam + 1), rel=1e-10)


def test_in_span_rho_vanishes_with_lambda() -> None:
    g = torch.Generator().manual_seed(3)
    prev = torch.randn(5, 20, generator=g, dtype=torch.float64)
    z = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3], dtype=torch.float64) @ prev
    rhos = [ridge_residual(prev, z, lam, normalize_rows=False) for lam in (1e-1, 1e-3, 1e-5, 1e-8)]
    assert all(b < a for a, b in itertools.pairwise(rhos))
    assert rhos[-1] < 1e-6
    # and the weights approach the exact coefficients of the unit-free (raw) rows
    w = ridge_weights(prev, z, 1e-10, normalize_rows=False)
    assert torch.allclose(
        w, torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3], dtype=torch.float64), atol=1e-6
    )


def test_row_normalisation_makes_it_scale_free() -> None:
    Z = torch.from_numpy(_tokens(4, 15, 9))
    scales = torch.rand(15, 1, dtype=torch.float64) * 10 + 0.1
    assert gain_curve(Z * scales) == pytest.approx(gain_curve(Z), abs=1e-12)
    assert gain_curve(Z * 3, normalize_rows=False) != pytest.approx(
        gain_curve(Z, normalize_rows=False), abs=1e-3
    )


def test_empty_context_and_float32() -> None:
    z = torch.randn(8)
    assert ridge_weights(torch.zeros(0, 8), z).shape == (0,)
    assert information_gain(torch.zeros(0, 8), z) == pytest.approx(0.5 * math.log(2.0))
    Z = torch.randn(10, 6)
    assert logdet_entropy(Z) == pytest.approx(_gram_h(unit_rows(Z.double().numpy()), 1.0), abs=1e-10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: logdet_entropy(torch.randn(5, 3), lam=0.0), "lam must be"),
        (lambda: logdet_entropy(torch.randn(5, 3), lam=float("nan")), "lam must be"),
        (lambda: logdet_entropy(torch.randn(5), 1.0), "2-D"),
        (lambda: logdet_entropy(torch.zeros(0, 3)), "at least 1 token"),
        (lambda: logdet_entropy(torch.randn(4, 3), form="vonneumann"), "unknown form"),
        (lambda: gain_curve(torch.zeros(3, 4)), "all-zero rows"),
        (lambda: gain_curve(torch.tensor([[1.0, float("inf")]])), "NaN or Inf"),
        (lambda: information_gain(torch.randn(3, 4), torch.randn(5)), "d = 4 but new has d = 5"),
        (lambda: information_gain(torch.randn(3, 4), torch.randn(1, 4)), "1-D"),
        (lambda: ridge_residual([[1.0]], torch.randn(1)), "torch.Tensor"),
    ],
)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
