"""mm-align: how well has a vision-language model aligned its image and text representations?

Implements the rank-based method of Diff-eRank (Wei et al., NeurIPS 2024).
"""

from mm_align.adapters import load_vlm
from mm_align.metrics import (
    VanishingRowsWarning,
    aggregate_erank,
    erank,
    image_reduction_ratio,
    image_text_alignment,
    matrix_entropy,
    spectrum,
)

__version__ = "0.1.0"

__all__ = [
    "VanishingRowsWarning",
    "__version__",
    "aggregate_erank",
    "erank",
    "image_reduction_ratio",
    "image_text_alignment",
    "load_vlm",
    "matrix_entropy",
    "spectrum",
]
