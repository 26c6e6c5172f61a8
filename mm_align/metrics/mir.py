"""Modality Integration Rate (MIR; Huang et al., arXiv 2410.07167, ICCV 2025).

MIR measures how far apart the LLM keeps image tokens and text tokens, layer by layer: the
Frechet distance between the two token clouds, each summarised by its mean and covariance,
summed over layers, in log10. LOWER is better (the modalities are better integrated), the
opposite direction of the Diff-eRank ratios.

Conventions, as in the official script (github.com/shikiw/Modality-Integration-Rate,
``mir.py`` and ``mir_util.py``):

* tokens are POOLED over the evaluation samples: one ``(N, d)`` matrix of image tokens and
  one ``(M, d)`` matrix of text tokens per layer (the script concatenates 100 samples);
* layers are the decoder blocks' outputs, ``hidden_states[1:]`` (the embedding output,
  index 0, is skipped); choosing the layers is the caller's job;
* text-centric normalisation: both modalities are multiplied by ``1 / mean_j ||t_j||_2``,
  the mean L2 norm of that layer's TEXT tokens;
* outliers, per modality after the scaling: a row whose L2 norm differs from the median
  row norm by more than ``3 * std`` of the row norms (unbiased std) is replaced by the
  per-dimension median of that modality's rows (medians as ``torch.median``: the lower of
  the two middle values for an even count);
* covariances are unbiased (divide by ``n - 1``);
* ``MIR = log10(sum_l FD_l)``.

The official "fast" mode approximates the matrix square root by 5 unnormalised Newton
iterations in float32; here the Frechet distance is exact up to float64 round-off (the
official "accurate" mode, ``scipy.linalg.sqrtm``, computes the same quantity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mm_align.metrics.checks import real_matrix

__all__ = [
    "frechet_distance",
    "frechet_distance_gaussians",
    "mir",
    "mir_per_layer",
    "replace_outliers",
    "text_centric_scale",
]


def _states(x: torch.Tensor, what: str, min_rows: int = 2) -> torch.Tensor:
    """Validate an ``(N, d)`` real tensor and return it as float64 (a copy, detached)."""
    return real_matrix(x, what, min_rows=min_rows)


def _psd_sqrt(S: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off -> 0)."""
    w, V = torch.linalg.eigh((S + S.T) / 2)
    return (V * w.clamp_min(0.0).sqrt()) @ V.T


def frechet_distance_gaussians(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu1, cov1) and N(mu2, cov2).

    ``||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2)``, in squared
    units of the features, float64; the cross term from the eigenvalues of ``F^T cov2 F``
    with F the Cholesky factor of cov1 (its symmetric eigen square root when cov1 is
    singular); round-off below 0 is clamped to 0.

    Args:
        mu1, mu2: ``(d,)`` means. cov1, cov2: ``(d, d)`` symmetric PSD covariances.

    >>> I = torch.eye(2, dtype=torch.float64)
    >>> frechet_distance_gaussians(torch.zeros(2), I, torch.tensor([3.0, 4.0]), 4 * I)
    27.0
    """
    mus = [m.detach().to(torch.float64) for m in (mu1, mu2)]
    covs = [c.detach().to(torch.float64) for c in (cov1, cov2)]
    d = mus[0].shape[0]
    if any(m.shape != (d,) for m in mus) or any(c.shape != (d, d) for c in covs):
        raise ValueError(
            "expected means (d,) and covariances (d, d); "
            f"got {[tuple(t.shape) for t in mus + covs]}"
        )
    if not all(bool(torch.isfinite(t).all()) for t in mus + covs):
        raise ValueError("means and covariances must be finite")
    # Any F with F F^T = cov1 gives F^T cov2 F the eigenvalues of cov1^1/2 cov2 cov1^1/2:
    # Cholesky (cheap) when cov1 is positive definite, else the symmetric eigen square root.
    chol, info = torch.linalg.cholesky_ex(covs[0])
    factor = chol if int(info) == 0 else _psd_sqrt(covs[0])
    middle = torch.linalg.eigvalsh(factor.T @ covs[1] @ factor).clamp_min(0.0).sqrt().sum()
    fd = (mus[0] - mus[1]).square().sum() + covs[0].trace() + covs[1].trace() - 2 * middle
    return max(float(fd), 0.0)


def frechet_distance(a: torch.Tensor, b: torch.Tensor, ddof: int = 1) -> float:
    """Frechet distance between the Gaussians fitted to the rows of ``a`` and of ``b``.

    Args:
        a: ``(N, d)`` samples (e.g. image tokens); b: ``(M, d)`` samples (e.g. text tokens).
        ddof: covariance divisor is ``n - ddof`` (1 = unbiased, as MIR's code).

    Returns:
        the distance in squared feature units, >= 0.

    The cross term ``tr((S_a^1/2 S_b S_a^1/2)^1/2)`` equals the nuclear norm of
    ``A_c B_c^T / sqrt((N - ddof)(M - ddof))`` (A_c, B_c the centred samples), which is
    used when that ``(N, M)`` matrix is smaller than ``(d, d)``; otherwise the ``(d, d)``
    covariances (:func:`frechet_distance_gaussians`). Both are exact.

    >>> a = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    >>> frechet_distance(a, a + torch.tensor([0.0, 2.0]))
    4.0
    """
    return _fd(_states(a, "a"), _states(b, "b"), ddof)


def _fd(A: torch.Tensor, B: torch.Tensor, ddof: int) -> float:
    """:func:`frechet_distance` of validated float64 copies, which it centres in place."""
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"a and b need the same feature size, got {A.shape[1]} and {B.shape[1]}")
    if ddof < 0 or min(A.shape[0], B.shape[0]) <= ddof:
        raise ValueError(
            f"ddof must be in [0, rows), got {ddof} for {A.shape[0]} and {B.shape[0]} rows"
        )
    (n, d), m = A.shape, B.shape[0]
    mu_a, mu_b = A.mean(0), B.mean(0)
    Ac, Bc = A.sub_(mu_a), B.sub_(mu_b)
    if n * m < d * d:
        ca, cb = n - ddof, m - ddof
        cross = torch.linalg.svdvals(Ac @ Bc.T).sum() / math.sqrt(ca * cb)
        fd = (mu_a - mu_b).square().sum() + Ac.square().sum() / ca + Bc.square().sum() / cb
        return max(float(fd - 2 * cross), 0.0)
    cov_a = Ac.T @ Ac / (n - ddof)
    cov_b = Bc.T @ Bc / (m - ddof)
    return frechet_distance_gaussians(mu_a, cov_a, mu_b, cov_b)


def text_centric_scale(
    image: torch.Tensor, text: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale both modalities by ``1 / mean_j ||text_j||_2`` (MIR's text-centric normalisation).

    Args:
        image: ``(N, d)`` image tokens; text: ``(M, d)`` text tokens, same layer.

    Returns:
        float64 ``(image * s, text * s)``; the text tokens then have mean L2 norm 1.

    >>> _, t = text_centric_scale(torch.ones(2, 4), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    >>> t.norm(dim=1).mean().item()
    1.0
    """
    return _scale_(_states(image, "image", 1), _states(text, "text", 1))


def _scale_(img: torch.Tensor, txt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`text_centric_scale` in place on validated float64 copies."""
    mean_norm = torch.linalg.vector_norm(txt, dim=1).mean()
    if not mean_norm > 0:
        raise ValueError("every text token is zero: the text-centric scale is undefined")
    return img.div_(mean_norm), txt.div_(mean_norm)


def replace_outliers(x: torch.Tensor, n_sigma: float = 3.0) -> torch.Tensor:
    """Replace rows whose norm is an outlier by the per-dimension median row (MIR's rule).

    A row is an outlier when ``| ||x_i|| - median_j ||x_j|| | > n_sigma * std_j ||x_j||``
    (unbiased std); every outlier row becomes ``median(x, dim=0)`` computed over all rows,
    outliers included. Medians are ``torch.median``'s (lower middle value for even counts).

    Args:
        x: ``(N, d)`` tokens of one modality and layer, N >= 2.
        n_sigma: threshold in standard deviations; ``math.inf`` disables the rule.

    Returns:
        a new float64 ``(N, d)`` tensor; ``x`` is not modified.

    >>> x = torch.tensor([[1.0, 0.0]] * 10 + [[100.0, 0.0]])
    >>> replace_outliers(x, n_sigma=2.0)[-1].tolist()
    [1.0, 0.0]
    """
    return _replace_outliers_(_states(x, "x"), n_sigma)


def _replace_outliers_(X: torch.Tensor, n_sigma: float) -> torch.Tensor:
    """:func:`replace_outliers` in place on a validated float64 copy."""
    if not n_sigma > 0:
        raise ValueError(f"n_sigma must be > 0, got {n_sigma}")
    norms = torch.linalg.vector_norm(X, dim=1)
    outliers = (norms - norms.median()).abs() > n_sigma * norms.std()
    X[outliers] = X.median(dim=0).values
    return X


def mir_per_layer(
    image_states_per_layer: Sequence[torch.Tensor],
    text_states_per_layer: Sequence[torch.Tensor],
    n_sigma: float = 3.0,
    scale: bool = True,
) -> list[float]:
    """Per-layer Frechet distances of MIR (before the sum and log10).

    Args:
        image_states_per_layer: one ``(N_l, d)`` tensor per layer, the image tokens of all
            evaluation samples concatenated; text_states_per_layer: same for text tokens.
        n_sigma: outlier threshold (:func:`replace_outliers`).
        scale: apply :func:`text_centric_scale` first (MIR does).

    >>> img = [torch.tensor([[0.0, 1.0], [0.0, -1.0]])]
    >>> txt = [torch.tensor([[2.0, 1.0], [2.0, -1.0]])]
    >>> mir_per_layer(img, txt, scale=False)
    [4.0]
    """
    if len(image_states_per_layer) != len(text_states_per_layer):
        raise ValueError(
            f"got {len(image_states_per_layer)} image layers but "
            f"{len(text_states_per_layer)} text layers"
        )
    if len(image_states_per_layer) == 0:
        raise ValueError("no layers given")
    out = []
    for layer, (img, txt) in enumerate(zip(image_states_per_layer, text_states_per_layer)):
        img, txt = _states(img, f"image layer {layer}"), _states(txt, f"text layer {layer}")
        if scale:
            img, txt = _scale_(img, txt)
        out.append(_fd(_replace_outliers_(img, n_sigma), _replace_outliers_(txt, n_sigma), 1))
    return out


def mir(
    image_states_per_layer: Sequence[torch.Tensor],
    text_states_per_layer: Sequence[torch.Tensor],
    n_sigma: float = 3.0,
    scale: bool = True,
) -> float:
    """Modality Integration Rate ``log10(sum_l FD_l)``; lower = better integrated.

    Arguments as :func:`mir_per_layer`. Returns ``-inf`` when every layer's distance is 0.

    >>> img = [torch.tensor([[0.0, 1.0], [0.0, -1.0]])] * 5
    >>> txt = [torch.tensor([[2.0, 1.0], [2.0, -1.0]])] * 5
    >>> round(mir(img, txt, scale=False), 5)
    1.30103
    """
    total = math.fsum(mir_per_layer(image_states_per_layer, text_states_per_layer, n_sigma, scale))
    return math.log10(total) if total > 0 else -math.inf
