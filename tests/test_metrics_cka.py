"""Linear CKA against an independent NumPy HSIC computation, its invariances and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mm_align.metrics.cka import linear_cka


def _ref_cka(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC form with the centring matrix H = I - 11^T/n: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH))."""
    n = x.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = x @ x.T, y @ y.T

    def hsic(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.trace(A @ H @ B @ H))

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]


@pytest.mark.parametrize(("n", "d1", "d2"), [(50, 8, 12), (20, 64, 40), (200, 5, 5), (3, 2, 7)])
def test_matches_hsic_reference(n: int, d1: int, d2: int) -> None:
    rng = np.random.default_rng(n + d1 + d2)
    x = rng.standard_normal((n, d1)) + 2.0
    y = x @ rng.standard_normal((d1, d2)) + rng.standard_normal((n, d2))  # related, noisy
    got = linear_cka(torch.from_numpy(x), torch.from_numpy(y))
    assert got == pytest.approx(_ref_cka(x, y), rel=1e-10)
    assert 0 <= got <= 1


def test_self_similarity_and_invariances() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 10, generator=g, dtype=torch.float64) * torch.linspace(
        3, 0.1, 10, dtype=torch.float64
    )
    y = torch.randn(40, 6, generator=g, dtype=torch.float64)
    base = linear_cka(x, y)
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)
    assert linear_cka(x @ _orthogonal(10, 1), y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 0.01 * y @ _orthogonal(6, 2)) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 5.0, y - 3.0) == pytest.approx(base, rel=1e-10)  # centring
    assert linear_cka(y, x) == pytest.approx(base, rel=1e-12)  # symmetric


def test_not_invariant_to_anisotropic_scaling() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 4, generator=g, dtype=torch.float64)
    stretched = x * torch.tensor([10.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    assert linear_cka(x, stretched) < 0.9


def test_feature_and_gram_forms_agree() -> None:
    # n >= d1 + d2 uses the feature form, n < d1 + d2 the Gram form: pad with zero columns.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    y = x[:, :3] ** 2 + torch.randn(30, 3, generator=g, dtype=torch.float64)
    pad = torch.zeros(30, 40, dtype=torch.float64)
    assert linear_cka(torch.cat([x, pad], 1), y) == pytest.approx(linear_cka(x, y), rel=1e-10)


def test_float32_input() -> None:
    x, y = torch.randn(25, 7), torch.randn(25, 9)
    assert linear_cka(x, y) == pytest.approx(
        _ref_cka(x.double().numpy(), y.double().numpy()), rel=1e-10
    )


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.randn(5, 3), torch.randn(6, 3), "same samples"),
        (torch.randn(1, 3), torch.randn(1, 3), "at least 2 samples"),
        (torch.randn(5), torch.randn(5, 3), "2-D"),
        (torch.ones(5, 3), torch.randn(5, 3), "constant"),
        (torch.tensor([[float("inf"), 1.0], [0.0, 1.0]]), torch.randn(2, 2), "NaN or Inf"),
        (np.ones((3, 3)), torch.randn(3, 3), "torch.Tensor"),
    ],
)
def test_bad_input(x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        linear_cka(x, y)
