"""The companion paper's commands: light ``--help`` and configs validated before any model."""

from __future__ import annotations

import pytest

from mm_align.config import AttributionConfig, InfoGainConfig, ScalingConfig
from tests.test_architecture import loaded_after


@pytest.mark.parametrize("command", ["scaling", "info-gain", "attribution"])
def test_help_loads_neither_torch_nor_transformers(command: str) -> None:
    code = f"from mm_align.cli import main\ntry:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass"
    assert loaded_after(code) == set()


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
