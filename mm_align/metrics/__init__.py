"""Spectral core: pure functions from tensors or per-sample scalars to Python floats."""

from mm_align.metrics.aggregate import (
    AGGREGATION_METHODS,
    aggregate_erank,
    image_reduction_ratio,
    image_text_alignment,
)
from mm_align.metrics.spectral import (
    VanishingRowsWarning,
    erank,
    matrix_entropy,
    normalized_rows,
    spectral_entropy,
    spectrum,
)

__all__ = [
    "AGGREGATION_METHODS",
    "VanishingRowsWarning",
    "aggregate_erank",
    "erank",
    "image_reduction_ratio",
    "image_text_alignment",
    "matrix_entropy",
    "normalized_rows",
    "spectral_entropy",
    "spectrum",
]
