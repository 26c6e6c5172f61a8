"""The feature preparation of the platonic-representation code before CKA, mutual k-NN and
CKNNA (Huh et al., ICML 2024; github.com/minyoungg/platonic-rep).

Its ``measure_alignment.py`` prepares each model's feature tensor once (``prepare_features``:
``metrics.remove_outliers``) and then, for every pair it compares, L2-normalises the rows
(``compute_score(..., normalize=True)``) before the metric:

1. **clamp outliers**: every value is clamped to ``[-c, c]``, where ``c`` is the
   ``q = 0.95`` quantile of ``|x|`` over the whole feature tensor of one model (one set of
   features, not per row or per column). The exact mode (``exact=True``, the script's
   ``--precise``) sorts all ``|x|`` and takes element ``int(q * numel)`` (0-based, no
   interpolation); that is the quantile used here;
2. **unit rows**: each sample's vector divided by its L2 norm (``F.normalize``: a norm
   below ``1e-12`` is taken as ``1e-12``, so an all-zero row stays zero).

The reference does this in float32; here in float64. The script's default mode without
``--precise`` instead averages per-sample ``torch.quantile`` values (interpolated); mm-align
follows the exact mode, which the reference names the precise one.
"""

from __future__ import annotations

import torch

from mm_align.metrics.checks import real_matrix

__all__ = ["OUTLIER_QUANTILE", "PLATONIC_EPS", "clamp_outliers", "platonic_features"]

OUTLIER_QUANTILE = 0.95
"""platonic-rep's ``prepare_features`` default ``q``."""

PLATONIC_EPS = 1e-6
"""What platonic-rep's CKA and CKNNA add to their denominators."""

_NORM_FLOOR = 1e-12  # torch.nn.functional.normalize's default eps


def clamp_outliers(x: torch.Tensor, q: float = OUTLIER_QUANTILE) -> torch.Tensor:
    """Clamp every value of ``x`` to ``[-c, c]``, ``c`` the exact ``q`` quantile of ``|x|``.

    Args:
        x: ``(n, d)`` features of one model (one row per sample).
        q: in ``(0, 1]``; ``c`` is element ``int(q * x.numel())`` of the sorted ``|x|``
            (0-based); ``q = 1`` returns ``x`` unchanged.

    Returns:
        a float64 ``(n, d)`` copy.

    >>> clamp_outliers(torch.tensor([[1.0, -2.0], [3.0, -40.0]]), q=0.5).tolist()
    [[1.0, -2.0], [3.0, -3.0]]
    """
    X = real_matrix(x, "x")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    if q == 1:
        return X
    c = X.abs().flatten().sort().values[int(q * X.numel())]
    return X.clamp_(-c, c)


def platonic_features(x: torch.Tensor, q: float = OUTLIER_QUANTILE) -> torch.Tensor:
    """platonic-rep's preparation: :func:`clamp_outliers`, then every row scaled to unit L2
    norm (a row of norm below ``1e-12`` is divided by ``1e-12``, as ``F.normalize``).

    Args:
        x: ``(n, d)`` features of one model; q: the outlier quantile.

    Returns:
        a float64 ``(n, d)`` tensor with unit rows.

    >>> platonic_features(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), q=1).tolist()
    [[0.6, 0.8], [0.0, 1.0]]
    """
    X = clamp_outliers(x, q)
    return X / torch.linalg.vector_norm(X, dim=1, keepdim=True).clamp_min(_NORM_FLOOR)
