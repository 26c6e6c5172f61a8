"""Warnings mm_align emits name the line of the code that called mm_align."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from mm_align.metrics import VanishingRowsWarning, erank, matrix_entropy
from mm_align.warn import warn


def _with_vanishing_rows() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    half = torch.randn(10, 6, generator=g, dtype=torch.float64)
    # zero rows are the mean of a +- symmetric matrix: they vanish after centring
    return torch.cat([half, -half, torch.zeros(2, 6, dtype=torch.float64)])


@pytest.mark.parametrize("fn", [erank, matrix_entropy], ids=["erank", "matrix_entropy"])
def test_vanishing_rows_warning_points_at_the_calling_line(fn) -> None:
    R = _with_vanishing_rows()
    with pytest.warns(VanishingRowsWarning) as record:
        line = inspect.currentframe().f_lineno + 1
        fn(R)
    assert (record[0].filename, record[0].lineno) == (__file__, line)


def test_warning_from_code_outside_the_package_points_at_its_caller() -> None:
    # warn() called from a test (not mm_align code) names the line that called warn()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        warn("from outside", RuntimeWarning)
    assert (record[0].filename, record[0].lineno) == (__file__, line)
    assert record[0].category is RuntimeWarning


@pytest.mark.slow
def test_tiny_checkpoint_warning_points_at_load_vlm_call(tiny_checkpoints) -> None:
    from mm_align import load_vlm

    family, path = next(iter(tiny_checkpoints.items()))
    with pytest.warns(UserWarning, match="built by `mm-align tiny`") as record:
        line = inspect.currentframe().f_lineno + 1
        load_vlm(path)
    tiny = [w for w in record if "mm-align tiny" in str(w.message)]
    assert [(w.filename, w.lineno) for w in tiny] == [(__file__, line)], family
