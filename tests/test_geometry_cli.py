"""The companion paper's commands: configs validated before any model (their light ``--help``
is checked with every command's in test_architecture.py)."""

from __future__ import annotations

import pytest

from mm_align.config import AttributionConfig, InfoGainConfig, ScalingConfig


def test_configs_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="at least 2 models"):
        ScalingConfig(models=("a",), data="d", out=None)
    with pytest.raises(ValueError, match="given twice"):
        ScalingConfig(models=("a", "a"), data="d", out=None)
    with pytest.raises(ValueError, match="lam must be > 0"):
        InfoGainConfig(model="m", data="d", out=None, lam=0.0)
    with pytest.raises(ValueError, match="every k must be >= 1"):
        AttributionConfig(model="m", data="d", out=None, k="0,2")
    with pytest.raises(ValueError, match="alpha_ratio"):
        AttributionConfig(model="m", data="d", out=None, alpha_ratio=1.5)
    assert AttributionConfig(model="m", data="d", out=None, k="8, 2,2").k == (2, 8)
    assert ScalingConfig(models=["a", "b"], data="d", out=None).identity()["max_length"] == 2048
