"""RankMe against the paper's formula in NumPy, and the proof that it is not mm-align's eRank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mm_align.metrics.rankme import RANKME_EPS, rankme
from mm_align.metrics.spectral import erank
from tests.reference import official_erank


def _ref_rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    s = np.linalg.svd(z, compute_uv=False)
    p = s / np.sum(s) + eps
    return float(np.exp(-np.sum(p * np.log(p))))


@pytest.mark.parametrize(("n", "d"), [(100, 20), (20, 100), (64, 64), (500, 8)])
def test_matches_paper_formula(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    z = rng.standard_normal((n, d)) * np.geomspace(10, 0.01, d) + 1.0
    assert rankme(torch.from_numpy(z)) == pytest.approx(_ref_rankme(z), rel=1e-12)
    assert rankme(torch.from_numpy(z), eps=0.0) == pytest.approx(_ref_rankme(z, 0.0), rel=1e-12)
    assert RANKME_EPS == 1e-7


def test_differs_from_erank_on_the_same_data() -> None:
    # Anisotropic data with an offset: eRank centres, normalises rows and uses squared
    # singular values; RankMe uses the raw singular values. They disagree by a lot.
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 32)) * np.geomspace(5, 0.05, 32) + 3.0
    r, e = rankme(torch.from_numpy(z)), erank(torch.from_numpy(z))
    assert e == pytest.approx(official_erank(z), rel=1e-9)
    assert r == pytest.approx(_ref_rankme(z), rel=1e-12)
    assert abs(r - e) > 2.0, (r, e)


def test_singular_vs_squared_singular_values() -> None:
    # Zero-mean +-rows with orthogonal directions scaled 1..4: RankMe sees p ~ s, while the
    # eRank of the same centred, unit-row matrix sees equal weights (rows normalised).
    q = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0][:4]
    scales = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64).unsqueeze(1)
    z = torch.cat([scales * q, -scales * q])
    p = np.array([4.0, 3.0, 2.0, 1.0]) / 10
    assert rankme(z, eps=0.0) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert erank(z) == pytest.approx(4.0, rel=1e-12)


def test_closed_forms_and_invariances() -> None:
    assert rankme(torch.eye(6), eps=0.0) == pytest.approx(6.0, rel=1e-14)
    assert rankme(torch.ones(5, 3), eps=0.0) == pytest.approx(1.0, rel=1e-14)  # rank one
    g = torch.Generator().manual_seed(1)
    z = torch.randn(30, 10, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))[0]
    assert rankme(7 * z @ q) == pytest.approx(rankme(z), rel=1e-12)
    # Not centred by default; center=True removes a common offset.
    assert rankme(z + 10) != pytest.approx(rankme(z), rel=1e-3)
    assert rankme(z + 10, center=True) == pytest.approx(rankme(z, center=True), rel=1e-10)


@pytest.mark.parametrize(
    ("z", "kwargs", "message"),
    [
        (torch.randn(5), {}, "2-D"),
        (torch.zeros(0, 3), {}, "empty"),
        (torch.zeros(4, 3), {}, "is zero"),
        (torch.tensor([[1.0, float("nan")]]), {}, "NaN or Inf"),
        (torch.randn(4, 3), {"eps": -1.0}, "eps"),
        ([[1.0]], {}, "torch.Tensor"),
    ],
)
def test_bad_input(z, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rankme(z, **kwargs)
