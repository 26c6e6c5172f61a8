"""Power-law fits: exact recovery on synthetic data, an independent NumPy polyfit, the offset
form, and the text-resampling bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_align.metrics.scaling import (
    PowerLawFit,
    bootstrap_power_law,
    fit_power_law,
    model_statistic,
)

PYTHIA = np.array([14e6, 70e6, 160e6, 410e6, 1.0e9, 1.4e9, 2.8e9, 6.9e9, 12e9])


@pytest.mark.parametrize(("a", "b"), [(2.0, -0.1), (150.0, -0.35), (0.03, 0.2), (5.0, 0.0)])
def test_recovers_exact_power_law(a: float, b: float) -> None:
    fit = fit_power_law(PYTHIA, a * PYTHIA**b)
    assert isinstance(fit, PowerLawFit)
    assert fit.b == pytest.approx(b, abs=1e-10)
    assert fit.a == pytest.approx(a, rel=1e-10)
    assert fit.c == 0.0 and fit.r2 == pytest.approx(1.0, abs=1e-12)


def test_matches_numpy_polyfit_on_noisy_data() -> None:
    rng = np.random.default_rng(0)
    E = 40 * PYTHIA**-0.12 * np.exp(0.05 * rng.standard_normal(PYTHIA.size))
    slope, intercept = np.polyfit(np.log(PYTHIA), np.log(E), 1)
    fit = fit_power_law(PYTHIA.tolist(), E.tolist())
    assert fit.b == pytest.approx(slope, rel=1e-10)
    assert fit.a == pytest.approx(math.exp(intercept), rel=1e-10)
    resid = np.log(E) - (intercept + slope * np.log(PYTHIA))
    r2 = 1 - (resid**2).sum() / ((np.log(E) - np.log(E).mean()) ** 2).sum()
    assert fit.r2 == pytest.approx(r2, rel=1e-10) and 0 < fit.r2 < 1


def test_offset_form_recovers_exact_data() -> None:
    E = 30.0 * PYTHIA**-0.2 + 1.5
    fit = fit_power_law(PYTHIA, E, offset=True)
    assert fit.b == pytest.approx(-0.2, abs=1e-6)
    assert fit.a == pytest.approx(30.0, rel=1e-5)
    assert fit.c == pytest.approx(1.5, abs=1e-5)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)


def test_noisy_data_with_an_offset_give_a_finite_fit() -> None:
    rng = np.random.default_rng(1)
    E = 30.0 * PYTHIA**-0.2 + 1.5 + 0.01 * rng.standard_normal(PYTHIA.size)
    for offset in (False, True):
        fit = fit_power_law(PYTHIA, E, offset=offset)
        assert all(math.isfinite(v) for v in fit), fit
        assert fit.r2 > 0.9
    # The offset model fits at least as well in linear space as the pure power law.
    plain = fit_power_law(PYTHIA, E)
    with_c = fit_power_law(PYTHIA, E, offset=True)
    sse = lambda f: float(((f.a * PYTHIA**f.b + f.c - E) ** 2).sum())  # noqa: E731
    assert sse(with_c) <= sse(plain) + 1e-12


def test_model_statistic() -> None:
    H = np.array([[0.0, math.log(4.0)], [math.log(2.0), math.log(2.0)]])
    assert model_statistic(H, "entropy").tolist() == pytest.approx([math.log(2), math.log(2)])
    assert model_statistic(H, "erank").tolist() == pytest.approx([2.0, 2.0])
    assert model_statistic(H, "erank_mean").tolist() == pytest.approx([2.5, 2.0])
    with pytest.raises(ValueError, match="unknown statistic"):
        model_statistic(H, "median")


def _per_sample(
    rng: np.random.Generator, a: float, b: float, n: int, noise: float
) -> list[np.ndarray]:
    return [a * p**b + noise * rng.standard_normal(n) for p in PYTHIA]


def test_bootstrap_interval_covers_the_truth_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    H = _per_sample(rng, 20.0, -0.1, 200, 0.2)
    ci = bootstrap_power_law(PYTHIA, H, n_boot=300, seed=5)
    assert ci["b"][0] < -0.1 < ci["b"][1] and ci["b"][1] - ci["b"][0] < 0.02
    assert ci["a"][0] < 20.0 < ci["a"][1]
    assert bootstrap_power_law(PYTHIA, H, n_boot=300, seed=5) == ci
    unpaired = bootstrap_power_law(PYTHIA, H, n_boot=300, seed=5, paired=False)
    assert unpaired["b"][0] < -0.1 < unpaired["b"][1]


def test_bootstrap_of_noiseless_samples_collapses_to_the_fit() -> None:
    H = [np.full(10, 3.0 * p**-0.05) for p in PYTHIA]
    ci = bootstrap_power_law(PYTHIA, H, statistic="entropy", n_boot=50)
    assert ci["b"] == pytest.approx((-0.05, -0.05), abs=1e-12)
    ci_erank = bootstrap_power_law(PYTHIA, H, statistic="erank", n_boot=50)
    fit = fit_power_law(PYTHIA, np.exp([h[0] for h in H]))
    assert ci_erank["b"] == pytest.approx((fit.b, fit.b), abs=1e-12)


def test_bootstrap_with_offset_returns_c() -> None:
    rng = np.random.default_rng(3)
    H = _per_sample(rng, 30.0, -0.2, 50, 0.05)
    H = [h + 1.5 for h in H]
    ci = bootstrap_power_law(PYTHIA, H, offset=True, n_boot=40)
    assert set(ci) == {"a", "b", "c"} and all(lo <= hi for lo, hi in ci.values())


@pytest.mark.parametrize(
    ("sizes", "values", "kwargs", "message"),
    [
        ([1e6], [1.0], {}, "at least 2 models"),
        ([1e6, 1e7], [1.0, 2.0], {"offset": True}, "at least 3 models"),
        ([1e6, 1e6, 1e6], [1.0, 2.0, 3.0], {}, "2 distinct"),
        ([1e6, -1e7], [1.0, 2.0], {}, "sizes must be > 0"),
        ([1e6, 1e7], [1.0, 0.0], {}, "values > 0"),
        ([1e6, 1e7], [1.0, float("nan")], {}, "finite"),
        ([1e6, 1e7], [1.0, 2.0, 3.0], {}, "same 1-D length"),
        (
            [1e6, 1e7, 1e8],
            [1.0, 2.0, 3.0],
            {"offset": True, "exponent_bounds": (1, -1)},
            "exponent_bounds",
        ),
    ],
)
def test_fit_bad_input(sizes, values, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_power_law(sizes, values, **kwargs)


def test_bootstrap_bad_input() -> None:
    with pytest.raises(ValueError, match="2 sizes but entropies for 1"):
        bootstrap_power_law([1e6, 1e7], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="same number of texts"):
        bootstrap_power_law([1e6, 1e7], [[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="model 1: entropies hold NaN"):
        bootstrap_power_law([1e6, 1e7], [[1.0], [float("nan")]])
    with pytest.raises(ValueError, match="level"):
        bootstrap_power_law([1e6, 1e7], [[1.0], [2.0]], level=1.5)
