"""mm-align: how well has a vision-language model aligned its image and text representations?

Implements the rank-based method of Diff-eRank (Wei et al., NeurIPS 2024).

Importing the package is cheap: the public names below are resolved on first use (PEP 562),
so ``import mm_align`` loads neither torch nor transformers until a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mm_align._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "score": "mm_align.api",
    "diff_erank": "mm_align.api",
    "compare": "mm_align.api",
    "export": "mm_align.api",
    "write_report": "mm_align.api",
    "scaling": "mm_align.api",
    "info_gain": "mm_align.api",
    "attribution": "mm_align.api",
    "sweep": "mm_align.api",
    "Probe": "mm_align.pipeline.probe",
    "ScoreConfig": "mm_align.config",
    "DiffErankConfig": "mm_align.config",
    "SweepConfig": "mm_align.config",
    "ScoreResult": "mm_align.pipeline.result",
    "load_vlm": "mm_align.adapters",
    "VanishingRowsWarning": "mm_align.metrics",
    "aggregate_erank": "mm_align.metrics",
    "erank": "mm_align.metrics",
    "image_reduction_ratio": "mm_align.metrics",
    "image_text_alignment": "mm_align.metrics",
    "matrix_entropy": "mm_align.metrics",
    "spectrum": "mm_align.metrics",
}

__all__ = [  # noqa: RUF022 - grouped like _EXPORTS
    "__version__",
    "score", "diff_erank", "compare", "export", "write_report", "scaling", "info_gain", "attribution",
    "sweep", "Probe", "ScoreConfig", "SweepConfig", "DiffErankConfig", "ScoreResult", "load_vlm",
    "VanishingRowsWarning", "aggregate_erank", "erank", "image_reduction_ratio",
    "image_text_alignment", "matrix_entropy", "spectrum",
]

if TYPE_CHECKING:
    from mm_align.adapters import load_vlm
    from mm_align.api import (
        attribution,
        compare,
        diff_erank,
        export,
        info_gain,
        scaling,
        score,
        sweep,
        write_report,
    )
    from mm_align.config import DiffErankConfig, ScoreConfig, SweepConfig
    from mm_align.metrics import (
        VanishingRowsWarning,
        aggregate_erank,
        erank,
        image_reduction_ratio,
        image_text_alignment,
        matrix_entropy,
        spectrum,
    )
    from mm_align.pipeline.probe import Probe
    from mm_align.pipeline.result import ScoreResult


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mm_align' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
