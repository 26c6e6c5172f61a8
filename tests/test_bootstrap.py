"""Bootstrap statistics checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_align.metrics.bootstrap import (
    METRICS,
    STAGES,
    bootstrap_ci,
    dataset_metrics,
    paired_difference,
    unpaired_difference,
)

# Means of the per-stage entropies: the paper's LLaVA-1.5 / detail_23k eRanks (Table 2).
PAPER_ERANKS = {"vision": 18.34, "projector": 11.28, "image": 45.62, "text": 74.21, "joint": 76.34}


def _entropies(
    n: int, seed: int = 0, sd: float = 0.3, shift: float = 0.0
) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    common = rng.normal(0, sd, n)  # correlated across stages, as real samples are
    return {
        s: (math.log(e) + shift * (s == "joint") + 0.5 * common + rng.normal(0, sd, n)).tolist()
        for s, e in PAPER_ERANKS.items()
    }


def _closed_form(H: dict[str, list[float]]) -> dict[str, float]:
    e = {s: math.exp(sum(v) / len(v)) for s, v in H.items()}
    e3, e4, e5 = e["image"], e["text"], e["joint"]
    return {
        **{f"erank_{s}": v for s, v in e.items()},
        "image_reduction_ratio": (e["vision"] - e["projector"]) / e["vision"],
        "image_text_alignment": (e3 + e4 + e5) / 3 / max(e3, e4, e5),
    }


def test_dataset_metrics_closed_form_and_paper_table():
    H = _entropies(40)
    got = dataset_metrics(H)
    want = _closed_form(H)
    assert set(got) == set(METRICS)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12)
    # constant entropies reproduce the paper's Table 2 ratios from its printed eRanks
    table = dataset_metrics({s: [math.log(e)] * 3 for s, e in PAPER_ERANKS.items()})
    assert table["image_reduction_ratio"] == pytest.approx(0.3850, abs=5e-5)
    assert table["image_text_alignment"] == pytest.approx(0.8566, abs=5e-5)


def test_missing_stages_omit_their_metrics():
    H = _entropies(10)
    only_llm = {s: H[s] for s in ("image", "text", "joint")}
    assert set(dataset_metrics(only_llm)) == {
        "erank_image",
        "erank_text",
        "erank_joint",
        "image_text_alignment",
    }
    no_joint = {s: H[s] for s in ("vision", "projector", "text")}
    assert set(bootstrap_ci(no_joint, n_boot=20)) == {
        "erank_vision",
        "erank_projector",
        "erank_text",
        "image_reduction_ratio",
    }


@pytest.mark.parametrize(
    "bad, match",
    [
        ({}, "no per-sample entropies"),
        ({"vision": [1.0, 2.0], "projector": [1.0]}, "same samples"),
        ({"vision": [1.0, float("nan")]}, "vision"),
    ],
)
def test_invalid_input_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        dataset_metrics(bad)


def test_bootstrap_matches_plain_loop_with_same_indices():
    H = _entropies(23, seed=3)
    n_boot, seed = 200, 7
    idx = np.random.default_rng(seed).integers(0, 23, size=(n_boot, 23))
    loop: dict[str, list[float]] = {k: [] for k in METRICS}
    for row in idx:
        m = _closed_form({s: [H[s][i] for i in row] for s in STAGES})
        for k, v in m.items():
            loop[k].append(v)
    got = bootstrap_ci(H, n_boot=n_boot, level=0.9, seed=seed)
    for k in METRICS:
        want = np.quantile(loop[k], [0.05, 0.95])
        assert got[k] == pytest.approx(tuple(want), rel=1e-10), k


def test_bootstrap_is_deterministic_and_seed_dependent():
    H = _entropies(30)
    assert bootstrap_ci(H, seed=1) == bootstrap_ci(H, seed=1)
    assert bootstrap_ci(H, seed=1) != bootstrap_ci(H, seed=2)


def test_bootstrap_blocks_do_not_change_result(monkeypatch):
    import mm_align.metrics.bootstrap as bs

    H = _entropies(50)
    whole = bootstrap_ci(H, n_boot=300)
    monkeypatch.setattr(bs, "_GATHER_BLOCK", 7 * 50 * 5)  # blocks of 7 replicates
    assert bootstrap_ci(H, n_boot=300) == whole


def test_bootstrap_interval_covers_truth_about_95_percent():
    # Entropies ~ Normal(log e_s, sd): the true dataset eRank is e_s * exp(0) = e_s and the
    # true ratios are the closed form of the paper's Table 2 eRanks.
    truth = _closed_form({s: [math.log(e)] for s, e in PAPER_ERANKS.items()})
    reps, hits = 200, {k: 0 for k in METRICS}
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        H = {s: (math.log(e) + rng.normal(0, 0.4, 60)).tolist() for s, e in PAPER_ERANKS.items()}
        ci = bootstrap_ci(H, n_boot=400, seed=r)
        for k, (lo, hi) in ci.items():
            hits[k] += lo <= truth[k] <= hi
    for k, h in hits.items():
        # binomial(200, 0.95) sd ~ 3 %; percentile intervals under-cover slightly at n = 60
        assert 0.86 <= h / reps <= 0.99, (k, h / reps)


def test_paired_difference_of_a_run_with_itself_is_exactly_zero():
    H = _entropies(25)
    out = paired_difference(H, H, n_boot=500)
    assert set(out) == set(METRICS)
    for d in out.values():
        assert d["diff"] == 0.0
        assert d["ci95"] == [0.0, 0.0]
        assert d["p_value"] == 1.0
        assert d["a"] == d["b"]


def test_paired_difference_detects_a_large_shift_and_matches_loop():
    a = _entropies(30, seed=5)
    b = _entropies(30, seed=5, shift=0.7)  # joint entropies +0.7 nats: eRank5 x 2
    n_boot, seed = 400, 11
    out = paired_difference(a, b, n_boot=n_boot, seed=seed)
    joint = out["erank_joint"]
    assert joint["diff"] == pytest.approx(
        _closed_form(b)["erank_joint"] - _closed_form(a)["erank_joint"]
    )
    assert joint["ci95"][0] > 0
    assert joint["p_value"] == pytest.approx(2 / (n_boot + 1))
    assert out["erank_vision"]["diff"] == 0.0 and out["erank_vision"]["p_value"] == 1.0
    # eRank5 becomes by far the max of eRank3..5, so the alignment drops
    assert out["image_text_alignment"]["ci95"][1] < 0

    idx = np.random.default_rng(seed).integers(0, 30, size=(n_boot, 30))
    diffs = []
    for row in idx:
        ma = _closed_form({s: [a[s][i] for i in row] for s in STAGES})
        mb = _closed_form({s: [b[s][i] for i in row] for s in STAGES})
        diffs.append(mb["image_text_alignment"] - ma["image_text_alignment"])
    want = np.quantile(diffs, [0.025, 0.975])
    assert out["image_text_alignment"]["ci95"] == pytest.approx(list(want), rel=1e-9)


def test_paired_p_value_is_not_small_without_a_shift():
    a = _entropies(40, seed=1)
    b = _entropies(40, seed=2)  # same distribution, different noise
    out = paired_difference(a, b, n_boot=1000)
    # 7 correlated metrics; at least most of them must not be "significant"
    assert sum(d["p_value"] > 0.05 for d in out.values()) >= 5


def test_paired_difference_needs_aligned_samples():
    with pytest.raises(ValueError, match="same samples"):
        paired_difference(_entropies(10), _entropies(11))


def test_paired_uses_only_shared_stages():
    a = _entropies(10)
    b = {s: v for s, v in _entropies(10).items() if s != "vision"}
    assert "erank_vision" not in paired_difference(a, b, n_boot=20)
    assert "image_reduction_ratio" not in paired_difference(a, b, n_boot=20)


def test_unpaired_difference_handles_different_sizes_and_is_wider():
    a = _entropies(40, seed=1)
    b = _entropies(40, seed=1, shift=0.1)
    paired = paired_difference(a, b, n_boot=1000)["erank_joint"]
    unpaired = unpaired_difference(a, b, n_boot=1000)["erank_joint"]
    assert unpaired["diff"] == pytest.approx(paired["diff"])
    assert unpaired["ci95"][1] - unpaired["ci95"][0] > 2 * (paired["ci95"][1] - paired["ci95"][0])
    assert unpaired_difference(a, _entropies(17, seed=4), n_boot=50)["erank_text"]["b"] > 0
