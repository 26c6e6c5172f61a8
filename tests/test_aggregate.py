"""Dataset aggregation and the paper's two ratios, checked against the paper's tables."""

from __future__ import annotations

import math

import pytest

from mm_align import aggregate_erank, image_reduction_ratio, image_text_alignment

# Diff-eRank (NeurIPS 2024) Table 2: printed dataset-level eRanks 1..5 and the two ratios.
TABLE_2 = {
    "LLaVA-1.5 detail_23k": ((18.34, 11.28, 45.62, 74.21, 76.34), 0.3850, 0.8566),
    "LLaVA-1.5 cc_sbu_align": ((9.00, 5.20, 28.47, 59.00, 47.63), 0.4222, 0.7633),
    "MiniGPT-v2 detail_23k": ((90.59, 55.70, 58.50, 63.63, 108.53), 0.3851, 0.7084),
    "MiniGPT-v2 cc_sbu_align": ((74.79, 46.15, 48.68, 52.68, 93.29), 0.3829, 0.6955),
    # Table 3: LLaVA-1.5 on detail_23k with every image rotated clockwise.
    "LLaVA-1.5 detail_23k rotated": ((19.20, 12.31, 46.54, 74.21, 77.69), 0.3588, 0.8514),
}
# The paper prints 0.7618 for LLaVA-1.5 / cc_sbu_align, but its own printed eRanks give
# (28.47 + 59.00 + 47.63) / 3 / 59.00 = 0.7633: a typo in the paper, pinned down here.
PAPER_TYPO_ALIGNMENT = 0.7618


@pytest.mark.parametrize("name", sorted(TABLE_2))
def test_ratios_reproduce_the_paper(name: str) -> None:
    (e1, e2, e3, e4, e5), reduction, alignment = TABLE_2[name]
    # The printed eRanks are rounded to 2 decimals, the paper's ratios come from unrounded
    # ones: agreement to 4 decimals means within one unit of the 4th (Table 3's reduction is
    # 0.358854 from the printed eRanks, printed as 0.3588).
    assert image_reduction_ratio(e1, e2) == pytest.approx(reduction, abs=1e-4)
    assert image_text_alignment(e3, e4, e5) == pytest.approx(alignment, abs=1e-4)


def test_paper_typo_is_not_what_the_formula_gives() -> None:
    assert abs(image_text_alignment(28.47, 59.00, 47.63) - PAPER_TYPO_ALIGNMENT) > 1e-3


def test_alignment_is_one_for_equal_ranks_and_order_free() -> None:
    assert image_text_alignment(5.0, 5.0, 5.0) == 1.0
    assert image_text_alignment(1.0, 2.0, 3.0) == image_text_alignment(3.0, 1.0, 2.0)
    assert image_text_alignment(1.0, 2.0, 3.0) == pytest.approx(2 / 3)


def test_aggregate_paper_and_mean() -> None:
    hs = [math.log(2.0), math.log(8.0)]
    assert aggregate_erank(hs) == pytest.approx(4.0)  # exp(mean H) = geometric mean of eRanks
    assert aggregate_erank(hs, method="paper") == pytest.approx(4.0)
    assert aggregate_erank(hs, method="mean") == pytest.approx(5.0)
    assert aggregate_erank(iter(hs)) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([], {}, "no entropies"),
        ([1.0, float("nan")], {}, "NaN or Inf"),
        ([1.0], {"method": "median"}, "unknown aggregation method"),
    ],
)
def test_aggregate_bad_input(values, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        aggregate_erank(values, **kwargs)


def test_ratio_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        image_reduction_ratio(0.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        image_text_alignment(1.0, float("nan"), 2.0)
