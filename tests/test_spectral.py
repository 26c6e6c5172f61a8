"""The spectral core against an independent float64 implementation of the official procedure,
closed forms, invariances and every bad-input case."""

from __future__ import annotations

import math
import warnings
import zlib

import numpy as np
import pytest
import torch

from mm_align import erank, matrix_entropy, spectrum
from mm_align.metrics import VanishingRowsWarning
from tests.reference import official_entropy, official_erank


def _low_rank_plus_noise(rng: np.random.Generator, n: int, d: int, k: int, noise: float):
    basis = rng.standard_normal((k, d))
    coeff = rng.standard_normal((n, k)) * np.geomspace(10, 1, k)
    return coeff @ basis + noise * rng.standard_normal((n, d))


CASES = {
    "gaussian N<d": lambda r: r.standard_normal((40, 100)),
    "gaussian N>d": lambda r: r.standard_normal((300, 48)),
    "square": lambda r: r.standard_normal((64, 64)),
    "low rank + noise N<d": lambda r: _low_rank_plus_noise(r, 120, 256, 8, 0.05),
    "low rank + noise N>d": lambda r: _low_rank_plus_noise(r, 500, 64, 5, 0.01),
    "anisotropic heavy tail": lambda r: r.standard_t(2, (80, 30)) * np.geomspace(100, 0.01, 30),
    "offset (large mean)": lambda r: 1e3 + r.standard_normal((50, 20)),
    "two rows": lambda r: r.standard_normal((2, 10)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_official_float64(name: str) -> None:
    R = CASES[name](np.random.default_rng(zlib.crc32(name.encode())))
    got = erank(torch.from_numpy(R))
    want = official_erank(R)
    assert abs(got - want) / want <= 1e-9, (got, want)
    assert abs(matrix_entropy(torch.from_numpy(R)) - official_entropy(R)) <= 1e-9 * max(
        1.0, official_entropy(R)
    )


def test_float32_input_matches_reference_of_same_values() -> None:
    R = torch.randn(200, 512, generator=torch.Generator().manual_seed(0))
    want = official_erank(R.numpy().astype(np.float64))
    assert abs(erank(R) - want) / want <= 1e-9


def _orthonormal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q


@pytest.mark.parametrize("k", [1, 2, 3, 7, 16])
def test_k_orthonormal_directions_give_erank_k(k: int) -> None:
    # Rows +-q_1, ..., +-q_k: zero mean, unit rows, covariance = I_k / k, entropy log k.
    d = 32
    q = _orthonormal(d, k)[:k]
    R = torch.cat([q, -q])
    assert erank(R) == pytest.approx(k, rel=1e-12)
    assert matrix_entropy(R) == pytest.approx(math.log(k), abs=1e-12)
    s = spectrum(R)
    assert torch.allclose(s[:k], torch.full((k,), 1 / k, dtype=torch.float64), atol=1e-14)
    assert float(s[k:].sum()) < 1e-14


def test_invariances() -> None:
    g = torch.Generator().manual_seed(1)
    R = torch.randn(60, 24, generator=g, dtype=torch.float64) * torch.linspace(5, 0.1, 24,
                                                                               dtype=torch.float64)
    base = erank(R)
    perm = torch.randperm(60, generator=g)
    assert erank(R[perm]) == pytest.approx(base, rel=1e-12)
    assert erank(R @ _orthonormal(24, 3)) == pytest.approx(base, rel=1e-10)
    # Global scale and translation vanish in the centring and row normalisation.
    assert erank(7.5 * R + torch.randn(24, generator=g, dtype=torch.float64)) == pytest.approx(
        base, rel=1e-10
    )


def test_per_row_positive_scaling_is_invariant_when_it_keeps_the_mean() -> None:
    # Row normalisation removes per-row scale. Scaling moves the row mean in general (and then
    # eRank legitimately changes), so scale the +-pairs of a zero-mean matrix alike.
    g = torch.Generator().manual_seed(2)
    half = torch.randn(30, 16, generator=g, dtype=torch.float64)
    R = torch.cat([half, -half])
    a = torch.rand(30, 1, generator=g, dtype=torch.float64) * 100 + 0.01
    assert erank(torch.cat([a * half, -a * half])) == pytest.approx(erank(R), rel=1e-10)


def test_isotropic_gaussian_approaches_d() -> None:
    d = 16
    g = torch.Generator().manual_seed(3)
    values = [erank(torch.randn(n, d, generator=g, dtype=torch.float64)) for n in (32, 256, 8192)]
    assert values[0] < values[1] < values[2] <= d
    assert values[2] > 0.99 * d


def test_spectrum_shape_order_and_sum() -> None:
    for n, d in [(10, 40), (40, 10)]:
        s = spectrum(torch.randn(n, d))
        assert s.dtype == torch.float64 and s.shape == (min(n, d),)
        assert bool((s >= 0).all()) and bool((s[:-1] >= s[1:]).all())
        assert float(s.sum()) == pytest.approx(1.0, abs=1e-14)


def test_normalized_entropy_divides_by_log_hidden_size() -> None:
    R = torch.randn(50, 37, dtype=torch.float64)
    assert matrix_entropy(R, normalized=True) == pytest.approx(
        official_entropy(R.numpy()) / math.log(37), rel=1e-9
    )
    assert 0 < matrix_entropy(R, normalized=True) < 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_reduced_precision_inputs(dtype: torch.dtype) -> None:
    R = torch.randn(64, 128, generator=torch.Generator().manual_seed(4)).to(dtype)
    want = official_erank(R.to(torch.float64).numpy())
    assert abs(erank(R) - want) / want <= 1e-9


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_inputs(dtype: torch.dtype) -> None:
    R = torch.randn(64, 128).to(dtype)
    want = official_erank(R.to(torch.float64).numpy())
    assert abs(erank(R.cuda()) - want) / want <= 1e-9


@pytest.mark.parametrize(
    ("R", "message"),
    [
        (torch.randn(10), "2-D"),
        (torch.randn(2, 3, 4), "2-D"),
        (torch.randn(1, 8), "at least 2 token vectors"),
        (torch.randn(0, 8), "at least 2 token vectors"),
        (torch.randn(5, 0), "hidden size d = 0"),
        (torch.ones(6, 4), "identical"),
        (torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [3.0, 1.0]]), "NaN or Inf"),
        (torch.tensor([[1.0, float("inf")], [0.0, 0.0], [3.0, 1.0]]), "NaN or Inf"),
        (torch.randn(4, 4, dtype=torch.complex64), "real-valued"),
        ([[1.0, 2.0], [3.0, 4.0]], "torch.Tensor"),
    ],
)
def test_bad_input_raises_specific_value_error(R, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        erank(R)


def test_float16_overflow_is_reported_as_non_finite() -> None:
    R = torch.randn(8, 8).half()
    R[3, 2] = float("inf")
    with pytest.raises(ValueError, match="rows 3"):
        erank(R)


def test_rows_equal_to_the_mean_are_dropped_with_a_warning() -> None:
    g = torch.Generator().manual_seed(5)
    half = torch.randn(20, 12, generator=g, dtype=torch.float64)
    # Zero rows are exactly the mean of a +- symmetric matrix: they vanish after centring.
    R = torch.cat([half, -half, torch.zeros(3, 12, dtype=torch.float64)])
    with pytest.warns(VanishingRowsWarning, match="dropped 3 of 43"):
        got = erank(R)
    assert got == pytest.approx(official_erank(torch.cat([half, -half]).numpy()), rel=1e-9)


def test_no_warning_for_ordinary_input() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        erank(torch.randn(30, 10))
