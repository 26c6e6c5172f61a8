"""MIR and the Frechet distance against independent NumPy/SciPy computations (the formula of
MIR's official code, scipy.linalg.sqrtm of the covariance product), closed forms, invariances
and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from mm_align.metrics.mir import (
    frechet_distance,
    frechet_distance_gaussians,
    mir,
    mir_per_layer,
    replace_outliers,
    text_centric_scale,
)


def _ref_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance as MIR's ``calculate_fid`` (accurate mode), in float64."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False, ddof=1)
    cb = np.cov(b, rowvar=False, ddof=1)
    covmean = scipy.linalg.sqrtm(ca @ cb)
    return float(
        ((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean.real)
    )


def _ref_fd_eig(a: np.ndarray, b: np.ndarray) -> float:
    """Same quantity via the (real, >= 0) eigenvalues of the non-symmetric product ca @ cb."""
    ca = np.cov(a, rowvar=False, ddof=1)
    cb = np.cov(b, rowvar=False, ddof=1)
    ev = np.linalg.eigvals(ca @ cb).real.clip(min=0)
    return float(
        ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(ev).sum()
    )


def _ref_outliers(x: np.ndarray, n_sigma: float = 3.0) -> np.ndarray:
    """MIR's 3-sigma rule with torch.median's lower-median convention, in NumPy."""
    x = x.copy()
    n = x.shape[0]
    norms = np.linalg.norm(x, axis=1)
    lower_median = np.sort(norms)[(n - 1) // 2]
    out = np.abs(norms - lower_median) > n_sigma * norms.std(ddof=1)
    x[out] = np.sort(x, axis=0)[(n - 1) // 2]
    return x


def _ref_mir(images: list[np.ndarray], texts: list[np.ndarray]) -> float:
    total = 0.0
    for img, txt in zip(images, texts):
        s = 1.0 / np.linalg.norm(txt, axis=1).mean()
        total += _ref_fd(_ref_outliers(img * s), _ref_outliers(txt * s))
    return math.log10(total)


def _cloud(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    mix = rng.standard_normal((d, d)) / math.sqrt(d)
    return rng.standard_normal((n, d)) * np.geomspace(3, 0.3, d) @ mix + shift


@pytest.mark.parametrize(
    ("n", "m", "d"),
    [(200, 150, 16), (64, 300, 8), (40, 30, 60), (12, 25, 100), (500, 500, 32)],
)
def test_frechet_distance_matches_scipy_sqrtm_formula(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n * 1000 + m + d)
    a, b = _cloud(rng, n, d), _cloud(rng, m, d, shift=0.5)
    got = frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    want = _ref_fd_eig(a, b)
    # N < d or M < d: the covariances are singular, where sqrtm and eig lose ~sqrt(eps).
    tol = 1e-9 if min(n, m) > d else 1e-6
    assert got == pytest.approx(want, rel=tol)
    if min(n, m) > d:
        assert got == pytest.approx(_ref_fd(a, b), rel=1e-9)


def test_gram_and_covariance_paths_agree() -> None:
    # n * m < d * d takes the (N, M) nuclear-norm path; padding d with zero columns keeps
    # the distance and switches sizes, so each path is checked against the other.
    rng = np.random.default_rng(7)
    a, b = torch.from_numpy(_cloud(rng, 30, 20)), torch.from_numpy(_cloud(rng, 25, 20, 1.0))
    base = frechet_distance(a, b)  # 750 > 400: covariance path
    pad = torch.zeros(30, 20, dtype=torch.float64)
    padded = frechet_distance(torch.cat([a, pad], 1), torch.cat([b, pad[:25]], 1))  # 750 < 1600
    assert padded == pytest.approx(base, rel=1e-10)


def test_diagonal_covariances_closed_form() -> None:
    rng = np.random.default_rng(1)
    va, vb = rng.uniform(0.1, 4, 12), rng.uniform(0.1, 4, 12)
    mu = rng.standard_normal(12)
    want = float((mu**2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum())
    got = frechet_distance_gaussians(
        torch.zeros(12),
        torch.diag(torch.from_numpy(va)),
        torch.from_numpy(mu),
        torch.diag(torch.from_numpy(vb)),
    )
    assert got == pytest.approx(want, rel=1e-12)


def test_commuting_covariances_closed_form() -> None:
    # Same eigenvectors Q: FD = sum (sqrt(a_i) - sqrt(b_i))^2, whatever the rotation.
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    va, vb = rng.uniform(0.01, 9, 10), rng.uniform(0.01, 9, 10)
    ca, cb = q @ np.diag(va) @ q.T, q @ np.diag(vb) @ q.T
    got = frechet_distance_gaussians(
        torch.zeros(10), torch.from_numpy(ca), torch.zeros(10), torch.from_numpy(cb)
    )
    assert got == pytest.approx(float(((np.sqrt(va) - np.sqrt(vb)) ** 2).sum()), rel=1e-10)


@pytest.mark.parametrize("rotate", [False, True])
def test_singular_covariances_closed_form(rotate: bool) -> None:
    # Zero variances make cov1 singular: exactly diagonal ones fail the Cholesky and take
    # the eigen square root; rotated ones may pass it with tiny pivots. Both must be exact.
    rng = np.random.default_rng(8)
    va = np.concatenate([rng.uniform(0.5, 4, 6), np.zeros(4)])
    vb = np.concatenate([np.zeros(3), rng.uniform(0.5, 4, 7)])
    q = np.linalg.qr(rng.standard_normal((10, 10)))[0] if rotate else np.eye(10)
    ca, cb = q @ np.diag(va) @ q.T, q @ np.diag(vb) @ q.T
    want = float(((np.sqrt(va) - np.sqrt(vb)) ** 2).sum())
    for c1, c2 in ((ca, cb), (cb, ca)):
        got = frechet_distance_gaussians(
            torch.zeros(10), torch.from_numpy(c1), torch.zeros(10), torch.from_numpy(c2)
        )
        assert got == pytest.approx(want, rel=1e-7)


def test_frechet_distance_is_symmetric_zero_on_self_and_rotation_invariant() -> None:
    rng = np.random.default_rng(3)
    a, b = torch.from_numpy(_cloud(rng, 80, 12)), torch.from_numpy(_cloud(rng, 90, 12, 0.3))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-10)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)
    q, _ = torch.linalg.qr(torch.from_numpy(rng.standard_normal((12, 12))))
    assert frechet_distance(a @ q, b @ q) == pytest.approx(frechet_distance(a, b), rel=1e-10)


def test_ddof_zero_is_the_biased_covariance() -> None:
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # cov_a = diag(2, 0) (unbiased) or diag(1, 0) (biased); cov_b = 0.
    assert frechet_distance(a, b) == pytest.approx(2.0)
    assert frechet_distance(a, b, ddof=0) == pytest.approx(1.0)


def test_replace_outliers_matches_reference_and_copies() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((101, 6))
    x[[3, 50]] *= 40  # two rows with huge norms
    t = torch.from_numpy(x)
    got = replace_outliers(t)
    np.testing.assert_allclose(got.numpy(), _ref_outliers(x), rtol=0, atol=0)
    assert not np.array_equal(got.numpy()[3], x[3])
    assert torch.equal(t, torch.from_numpy(x))  # input untouched
    assert torch.equal(replace_outliers(t, n_sigma=math.inf), t)


def test_even_count_uses_lower_median() -> None:
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]] * 5 + [[1000.0], [1001.0]])
    got = replace_outliers(x)
    assert got[-1].item() == 3.0 and got[-2].item() == 3.0  # lower middle of 22 values


def test_text_centric_scale() -> None:
    img, txt = torch.randn(5, 3), torch.randn(7, 3) * 9
    i2, t2 = text_centric_scale(img, txt)
    assert float(t2.norm(dim=1).mean()) == pytest.approx(1.0, rel=1e-14)
    s = float(txt.double().norm(dim=1).mean())
    assert torch.allclose(i2, img.double() / s, rtol=1e-14)


def test_mir_matches_reference_pipeline() -> None:
    rng = np.random.default_rng(5)
    layers = 4
    images = [_cloud(rng, 300, 24, shift=k) * (k + 1) for k in range(layers)]
    texts = [_cloud(rng, 120, 24) * 3 for _ in range(layers)]
    for x in images + texts:
        x[rng.integers(0, len(x), 2)] *= 25  # outliers to clip
    got = mir([torch.from_numpy(x) for x in images], [torch.from_numpy(x) for x in texts])
    assert got == pytest.approx(_ref_mir(images, texts), rel=1e-10)


def test_mir_is_invariant_to_a_common_scale_and_sums_layers() -> None:
    g = torch.Generator().manual_seed(6)
    img = [torch.randn(100, 8, generator=g, dtype=torch.float64) + 1 for _ in range(3)]
    txt = [torch.randn(80, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    per_layer = mir_per_layer(img, txt)
    assert mir(img, txt) == pytest.approx(math.log10(sum(per_layer)), rel=1e-12)
    assert mir([7 * x for x in img], [7 * x for x in txt]) == pytest.approx(
        mir(img, txt), rel=1e-10
    )
    # Without the text-centric scale, FD scales with the square of the features.
    raw = mir_per_layer(img, txt, scale=False, n_sigma=math.inf)
    raw7 = mir_per_layer([7 * x for x in img], [7 * x for x in txt], scale=False, n_sigma=math.inf)
    assert raw7 == pytest.approx([49 * v for v in raw], rel=1e-10)


def test_mir_identical_modalities_is_minus_infinity() -> None:
    x = [torch.randn(20, 4, dtype=torch.float64)]
    assert mir(x, x) < -10 or mir(x, x) == -math.inf


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_reduced_precision_inputs_are_computed_in_float64(dtype: torch.dtype) -> None:
    a, b = torch.randn(60, 10).to(dtype), (torch.randn(50, 10) + 1).to(dtype)
    want = _ref_fd(a.double().numpy(), b.double().numpy())
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (torch.randn(5), torch.randn(5, 2), "2-D"),
        (torch.randn(1, 3), torch.randn(5, 3), "at least 2 rows"),
        (torch.randn(5, 3), torch.randn(5, 4), "same feature size"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.randn(4, 2), "NaN or Inf"),
        ([[1.0, 2.0], [3.0, 4.0]], torch.randn(4, 2), "torch.Tensor"),
    ],
)
def test_frechet_distance_bad_input(a, b, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


def test_mir_bad_input() -> None:
    x = torch.randn(6, 3)
    with pytest.raises(ValueError, match="2 image layers but 1 text"):
        mir([x, x], [x])
    with pytest.raises(ValueError, match="no layers"):
        mir([], [])
    with pytest.raises(ValueError, match="text layer 1"):
        mir([x, x], [x, torch.randn(6)])
    with pytest.raises(ValueError, match="text token is zero"):
        mir([x], [torch.zeros(4, 3)])
