"""Pure metric functions: tensors or per-sample scalars in, Python floats out, float64 inside.

The paper's spectral core (``spectral``, ``aggregate``, ``bootstrap``) and neighbouring
measures computed from the same captured states, one module each: ``mir`` (Modality
Integration Rate), ``cka`` (linear CKA), ``knn`` (mutual k-NN alignment), ``rankme``
(singular-value effective rank), and the companion paper's ``scaling`` (power laws),
``info_gain`` (log-det entropy and the ridge identity) and ``attribution`` (Lasso). None of
them imports transformers, torchvision or matplotlib.
"""

from mm_align.metrics.aggregate import (
    AGGREGATION_METHODS,
    aggregate_erank,
    image_reduction_ratio,
    image_text_alignment,
)
from mm_align.metrics.cka import linear_cka
from mm_align.metrics.info_gain import gain_curve, information_gain, logdet_entropy
from mm_align.metrics.knn import mutual_knn
from mm_align.metrics.scaling import PowerLawFit, fit_power_law
from mm_align.metrics.spectral import (
    VanishingRowsWarning,
    erank,
    matrix_entropy,
    normalized_rows,
    spectral_entropy,
    spectrum,
)

# mir.mir and rankme.rankme are reached through their modules (mm_align.metrics.mir.mir):
# re-exporting them here would shadow the module names.
__all__ = [
    "AGGREGATION_METHODS",
    "PowerLawFit",
    "VanishingRowsWarning",
    "aggregate_erank",
    "erank",
    "fit_power_law",
    "gain_curve",
    "image_reduction_ratio",
    "image_text_alignment",
    "information_gain",
    "linear_cka",
    "logdet_entropy",
    "matrix_entropy",
    "mutual_knn",
    "normalized_rows",
    "spectral_entropy",
    "spectrum",
]
