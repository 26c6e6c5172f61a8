"""Dataset-level eRank and the paper's two multi-modal ratios (Diff-eRank, section 5.2).

Pure functions of per-sample scalars: no tensors of hidden states, no model knowledge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "AGGREGATION_METHODS",
    "aggregate_erank",
    "image_reduction_ratio",
    "image_text_alignment",
]

AGGREGATION_METHODS = ("paper", "mean")


def _finite_list(values: Iterable[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"no {what} to aggregate")
    bad = [i for i, v in enumerate(out) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{len(bad)} {what} are NaN or Inf (first at position {bad[0]})")
    return out


def aggregate_erank(
    entropies: Iterable[float], method: Literal["paper", "mean"] = "paper"
) -> float:
    """Dataset-level eRank from per-sample matrix entropies H_i (nats).

    Args:
        entropies: one entropy per sample (``matrix_entropy(R_i)``).
        method: ``"paper"``: ``exp(mean_i H_i)``, the paper's Algorithm (a) and the one its
            tables use; ``"mean"``: ``mean_i exp(H_i)``, the mean of per-sample eRanks,
            Algorithm (b) (an ablation in the paper). By Jensen, "mean" >= "paper".
    """
    hs = _finite_list(entropies, "entropies")
    if method == "paper":
        return math.exp(math.fsum(hs) / len(hs))
    if method == "mean":
        return math.fsum(math.exp(h) for h in hs) / len(hs)
    raise ValueError(f"unknown aggregation method {method!r}; choose one of {AGGREGATION_METHODS}")


def image_reduction_ratio(erank_vision: float, erank_projector: float) -> float:
    """``(eRank1 - eRank2) / eRank1``: the share of the vision encoder's effective rank
    the connector removes. Higher means the projector compresses more redundancy."""
    if not (math.isfinite(erank_vision) and math.isfinite(erank_projector)):
        raise ValueError("eRanks must be finite")
    if erank_vision <= 0:
        raise ValueError(f"erank_vision must be > 0, got {erank_vision}")
    return (erank_vision - erank_projector) / erank_vision


def image_text_alignment(erank_image: float, erank_text: float, erank_joint: float) -> float:
    """``mean(eRank3, eRank4, eRank5) / max(eRank3, eRank4, eRank5)``, in (0, 1].

    eRank3 = LLM states of the image alone, eRank4 = of the text alone, eRank5 = of the
    image-text pair. 1 means the three effective ranks are equal.
    """
    values = (erank_image, erank_text, erank_joint)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("eRanks must be finite")
    top = max(values)
    if top <= 0:
        raise ValueError(f"eRanks must be > 0, got {values}")
    return math.fsum(values) / 3 / top
