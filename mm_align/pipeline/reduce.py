"""Reduce one sample's captured representations to the scalars a run keeps.

This is where tensors meet metrics: after it, only Python floats (and a short prefix of
each spectrum) survive, so memory does not grow with the dataset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mm_align.metrics import (
    image_reduction_ratio,
    image_text_alignment,
    spectral_entropy,
    spectrum,
)
from mm_align.stages import LLM_STAGES, STAGES

TOP_EIGENVALUES = 64
"""How many leading normalised eigenvalues of each stage a result keeps (for plots)."""


class MetricError(ValueError):
    """A captured representation has no defined eRank (too few tokens, NaN, ...)."""


def _spectrum_and_entropy(states: torch.Tensor, what: str) -> tuple[torch.Tensor, float]:
    try:
        p = spectrum(states)
    except ValueError as err:
        raise MetricError(f"{what}: {err}") from None
    return p, spectral_entropy(p)


def reduce_sample(rep: Any, layers: Sequence[int] = ()) -> dict[str, Any]:
    """Per-sample eRanks, entropies, ratios, token counts and top spectra of one sample.

    Args:
        rep: a :class:`mm_align.adapters.Representation` (stage name -> ``(tokens, dim)``
            states for every name in :data:`STAGES`; ``rep.layer(stage, layer)`` for others).
        layers: extra LLM layers (non-negative, ``hidden_states`` convention) to record.

    Returns:
        a JSON-ready dict (see docs/ARCHITECTURE.md, results.jsonl).

    Raises:
        MetricError: a stage's states have no eRank; the message names the stage.
    """
    record: dict[str, Any] = {"tokens": {}, "spectra": {}}
    for stage in STAGES:
        states = rep[stage]
        p, h = _spectrum_and_entropy(states, f"{stage} states ({states.shape[0]} tokens)")
        record[f"entropy_{stage}"] = h
        record[f"erank_{stage}"] = math.exp(h)
        record["tokens"][stage] = int(states.shape[0])
        record["spectra"][stage] = p[:TOP_EIGENVALUES].cpu().tolist()
    record["image_reduction_ratio"] = image_reduction_ratio(
        record["erank_vision"], record["erank_projector"]
    )
    record["image_text_alignment"] = image_text_alignment(
        record["erank_image"], record["erank_text"], record["erank_joint"]
    )
    if layers:
        record["layers"] = {stage: {} for stage in LLM_STAGES}
        record["layer_entropies"] = {stage: {} for stage in LLM_STAGES}
        for stage in LLM_STAGES:
            for layer in layers:
                _, h = _spectrum_and_entropy(
                    rep.layer(stage, layer), f"{stage} states at layer {layer}"
                )
                record["layer_entropies"][stage][str(layer)] = h
                record["layers"][stage][str(layer)] = math.exp(h)
    return record
