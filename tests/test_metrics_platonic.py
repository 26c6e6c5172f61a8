"""platonic-rep's feature preparation and CKNNA against NumPy re-derivations of the reference.

The references follow github.com/minyoungg/platonic-rep: ``metrics.py`` (``remove_outliers``
with ``exact=True``, ``hsic_unbiased``, ``AlignmentMetrics.cknna`` with its defaults,
``AlignmentMetrics.cka``'s ``+ 1e-6``) and ``measure_alignment.py`` (``prepare_features`` on
each model's whole feature tensor, then ``F.normalize`` of the rows in ``compute_score``),
written here in plain float64 NumPy with loops where the package uses masks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mm_align.metrics.cka import linear_cka
from mm_align.metrics.cknna import cknna, hsic_unbiased
from mm_align.metrics.platonic import clamp_outliers, platonic_features


def _ref_prepare(x: np.ndarray, q: float = 0.95) -> np.ndarray:
    """remove_outliers(exact=True): clip at sorted(|x|)[int(q * numel)], then unit rows."""
    c = np.sort(np.abs(x).ravel())[int(q * x.size)]
    x = np.clip(x, -c, c)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _ref_neighbours(S: np.ndarray, k: int) -> list[set[int]]:
    """Each row's k other samples of largest similarity (ties: lower index)."""
    n = len(S)
    return [{j for _, j in sorted((-S[i, j], j) for j in range(n) if j != i)[:k]} for i in range(n)]


def _ref_hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. 2012, eq. 5, with matrix products written out."""
    m = len(K)
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    one = np.ones(m)
    value = np.trace(Kt @ Lt) + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2)) - 2 * one @ Kt @ Lt @ one / (m - 2)
    return float(value / (m * (m - 3)))


def _ref_cknna(a: np.ndarray, b: np.ndarray, k: int, eps: float = 1e-6) -> float:
    K, L = a @ a.T, b @ b.T
    nk, nl = _ref_neighbours(K, k), _ref_neighbours(L, k)

    def sim(X: np.ndarray, Y: np.ndarray, nx: list[set[int]], ny: list[set[int]]) -> float:
        M = np.zeros_like(X)
        for i, (sx, sy) in enumerate(zip(nx, ny)):
            for j in sx & sy:
                M[i, j] = 1.0
        return _ref_hsic_unbiased(M * X, M * Y)

    return sim(K, L, nk, nl) / (math.sqrt(sim(K, K, nk, nk) * sim(L, L, nl, nl)) + eps)


def _related(rng: np.random.Generator, n: int, d1: int, d2: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.standard_normal((n, d1)) * np.geomspace(4, 0.2, d1)
    b = np.tanh(a @ rng.standard_normal((d1, d2))) + 0.3 * rng.standard_normal((n, d2))
    return a, b


def test_clamp_takes_the_sorted_element_without_interpolation() -> None:
    # |x| = 1..100: element int(0.95 * 100) = 95 of the sorted values is 96 (torch.quantile
    # would interpolate to 95.05); signs are kept.
    x = torch.arange(1.0, 101.0).reshape(10, 10) * torch.tensor([1.0, -1.0]).repeat(5)
    got = clamp_outliers(x)
    assert got.abs().max().item() == 96.0 and got[9].tolist() == [91, -92, 93, -94, 95, -96, 96, -96, 96, -96]
    assert torch.equal(clamp_outliers(x, q=1.0), x.double())


def test_clamp_is_one_threshold_for_the_whole_matrix() -> None:
    # Two huge values in one row (2% of all): the reference's approximate mode (mean of the
    # per-row quantiles) would clamp them near 50; the exact global quantile clamps them to 1.
    x = torch.ones(20, 5, dtype=torch.float64)
    x[3, :2] = 1000.0
    assert clamp_outliers(x).max().item() == 1.0


@pytest.mark.parametrize(("n", "d", "q"), [(30, 7, 0.95), (8, 50, 0.95), (100, 3, 0.5), (5, 5, 0.99)])
def test_platonic_features_match_the_reference(n: int, d: int, q: float) -> None:
    rng = np.random.default_rng(n + d)
    x = rng.standard_t(2, (n, d))  # heavy tails: values above the quantile exist
    got = platonic_features(torch.from_numpy(x), q=q).numpy()
    np.testing.assert_allclose(got, _ref_prepare(x, q), rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-14)


def test_platonic_features_keep_a_zero_row_and_refuse_a_bad_q() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert platonic_features(x, q=1).tolist() == [[0.0, 0.0], [0.6, 0.8]]
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="q must be in"):
            clamp_outliers(x, q=q)


@pytest.mark.parametrize(("n", "k"), [(12, 2), (30, 5), (40, 10), (9, 8)])
def test_cknna_matches_the_reference(n: int, k: int) -> None:
    rng = np.random.default_rng(n * 100 + k)
    a, b = _related(rng, n, 6, 9)
    a, b = _ref_prepare(a), _ref_prepare(b)  # as the reference's pipeline hands them over
    got = cknna(torch.from_numpy(a), torch.from_numpy(b), k=k, eps=1e-6)
    assert got == pytest.approx(_ref_cknna(a, b, k), rel=1e-10, abs=1e-12)
    assert cknna(torch.from_numpy(a), torch.from_numpy(a), k=k) == pytest.approx(1.0, rel=1e-12)


def test_cknna_with_every_neighbour_is_unbiased_cka() -> None:
    rng = np.random.default_rng(7)
    a, b = _related(rng, 15, 4, 5)
    K, L = a @ a.T, b @ b.T
    unbiased_cka = _ref_hsic_unbiased(K, L) / math.sqrt(_ref_hsic_unbiased(K, K) * _ref_hsic_unbiased(L, L))
    assert cknna(torch.from_numpy(a), torch.from_numpy(b), k=14) == pytest.approx(unbiased_cka, rel=1e-10)


def test_hsic_unbiased_matches_the_formula() -> None:
    rng = np.random.default_rng(3)
    K, L = rng.standard_normal((10, 10)), rng.standard_normal((10, 10))  # not symmetric: masked kernels are not
    assert float(hsic_unbiased(torch.from_numpy(K), torch.from_numpy(L))) == pytest.approx(
        _ref_hsic_unbiased(K, L), rel=1e-12)


def test_cka_eps_is_added_to_the_denominator() -> None:
    # Features small enough that the reference's 1e-6 moves the value.
    rng = np.random.default_rng(5)
    x, y = (1e-4 * m for m in _related(rng, 20, 3, 4))
    n = len(x)
    H = np.eye(n) - 1 / n
    K, L = x @ x.T, y @ y.T

    def hsic(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.trace(A @ H @ B @ H))

    want = hsic(K, L) / (math.sqrt(hsic(K, K) * hsic(L, L)) + 1e-6)
    got = linear_cka(torch.from_numpy(x), torch.from_numpy(y), eps=1e-6)
    assert got == pytest.approx(want, rel=1e-10)
    assert got < 0.9 * linear_cka(torch.from_numpy(x), torch.from_numpy(y))


@pytest.mark.parametrize(
    ("a", "b", "k", "message"),
    [
        (torch.randn(6, 3), torch.randn(7, 3), 2, "same samples"),
        (torch.randn(3, 3), torch.randn(3, 3), 2, "at least 4 samples"),
        (torch.randn(6, 3), torch.randn(6, 3), 1, "k >= 2"),
        (torch.randn(6, 3), torch.randn(6, 3), 6, "needs at least k"),
        (torch.zeros(6, 3), torch.randn(6, 3), 2, "not positive"),
    ],
)
def test_cknna_bad_input(a, b, k, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cknna(a, b, k=k)
