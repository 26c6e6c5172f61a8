"""Reduce one sample's captured representations to the scalars a run keeps.

This is where tensors meet metrics: after it, only Python floats (and a short prefix of
each spectrum) survive, so memory does not grow with the dataset.

Cost: one Gram product per stage, except that the ``image`` stage's rows are a subset of the
``joint`` stage's (same pass, same layer), so both come from one product
(:mod:`mm_align.metrics.nested`); then one eigen-solver call for all of a sample's (or a
batch's, :func:`reduce_batch`) Gram matrices, batched on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mm_align.metrics import image_reduction_ratio, image_text_alignment, spectral_entropy
from mm_align.metrics.gram import spectra_of_grams
from mm_align.metrics.nested import nested_grams
from mm_align.metrics.spectral import gram_of_rows, normalized_rows
from mm_align.stages import LLM_STAGES, STAGES

__all__ = ["TOP_EIGENVALUES", "MetricError", "image_rows_of_joint", "reduce_batch", "reduce_sample"]

TOP_EIGENVALUES = 64
"""How many leading normalised eigenvalues of each stage a result keeps (for plots)."""

Key = tuple[str, int | None]
"""(stage, layer): layer None is the stage's own (last-layer) states."""


class MetricError(ValueError):
    """A captured representation has no defined eRank (too few tokens, NaN, ...)."""


def _states(rep: Any, stage: str, layer: int | None) -> tuple[torch.Tensor, str]:
    if layer is None:
        states = rep[stage]
        return states, f"{stage} states ({states.shape[0]} tokens)"
    return rep.layer(stage, layer), f"{stage} states at layer {layer}"


def _gram(rep: Any, stage: str, layer: int | None) -> torch.Tensor:
    states, what = _states(rep, stage, layer)
    try:
        return gram_of_rows(normalized_rows(states))
    except ValueError as err:
        raise MetricError(f"{what}: {err}") from None


def image_rows_of_joint(rep: Any) -> torch.Tensor | None:
    """Which joint rows are the image rows (bool over the joint rows), from the masks."""
    masks = getattr(rep, "masks", None) or {}
    image, joint = masks.get("image"), masks.get("joint")
    if image is None or joint is None or image.shape != joint.shape or bool((image & ~joint).any()):
        return None
    return image[joint]


def _image_and_joint(rep: Any, layer: int | None, subset: torch.Tensor | None) -> dict[Key, torch.Tensor]:
    """Gram matrices of the image and joint stages, from one product when the image rows are
    (as the masks say, and checked here) exactly the joint rows at ``subset``."""
    image, _ = _states(rep, "image", layer)
    joint, _ = _states(rep, "joint", layer)
    if subset is not None and subset.shape[0] == joint.shape[0] and int(subset.sum()) == image.shape[0]:
        subset = subset.to(joint.device)
        if torch.equal(joint[subset], image):
            try:
                g_joint, g_image = nested_grams(joint, subset)
                return {("image", layer): g_image, ("joint", layer): g_joint}
            except ValueError:
                pass  # computed stage by stage below, so that the error names its stage
    return {("image", layer): _gram(rep, "image", layer), ("joint", layer): _gram(rep, "joint", layer)}


def _sample_grams(rep: Any, layers: Sequence[int]) -> dict[Key, torch.Tensor]:
    """Every Gram matrix a record needs, in the order the stages are checked."""
    subset = image_rows_of_joint(rep)
    grams: dict[Key, torch.Tensor] = {(stage, None): _gram(rep, stage, None) for stage in ("vision", "projector")}
    grams.update(_image_and_joint(rep, None, subset))
    grams[("text", None)] = _gram(rep, "text", None)
    for layer in layers:
        grams.update(_image_and_joint(rep, layer, subset))
        grams[("text", layer)] = _gram(rep, "text", layer)
    return grams


def _record(rep: Any, layers: Sequence[int], spectra: dict[Key, torch.Tensor]) -> dict[str, Any]:
    record: dict[str, Any] = {"tokens": {}, "spectra": {}}
    for stage in STAGES:
        p = spectra[(stage, None)]
        h = spectral_entropy(p)
        record[f"entropy_{stage}"] = h
        record[f"erank_{stage}"] = math.exp(h)
        record["tokens"][stage] = int(rep[stage].shape[0])
        record["spectra"][stage] = p[:TOP_EIGENVALUES].tolist()
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
                h = spectral_entropy(spectra[(stage, layer)])
                record["layer_entropies"][stage][str(layer)] = h
                record["layers"][stage][str(layer)] = math.exp(h)
    return record


def reduce_batch(
    reps: Sequence[Any], layers: Sequence[int] = (), device: str | torch.device | None = None
) -> list[dict[str, Any] | MetricError]:
    """:func:`reduce_sample` of every representation, with one eigen-solver call per device
    for the whole batch. A sample whose states have no eRank gets its :class:`MetricError`
    in its place instead of a record; the others are unaffected.

    ``device``: where the eigen-solver runs (``None``: where the states are; ``"cpu"``).
    """
    grams: list[dict[Key, torch.Tensor] | MetricError] = []
    for rep in reps:
        try:
            grams.append(_sample_grams(rep, layers))
        except MetricError as err:
            grams.append(err)
    flat = [(i, key, g) for i, gs in enumerate(grams) if isinstance(gs, dict) for key, g in gs.items()]
    solved = spectra_of_grams([g for _, _, g in flat], device)
    spectra: dict[int, dict[Key, torch.Tensor]] = {}
    for (i, key, _), p in zip(flat, solved):
        spectra.setdefault(i, {})[key] = p.cpu()  # one transfer each; the rest is tiny CPU work
    return [gs if isinstance(gs, MetricError) else _record(rep, layers, spectra[i])
            for i, (rep, gs) in enumerate(zip(reps, grams))]


def reduce_sample(
    rep: Any, layers: Sequence[int] = (), device: str | torch.device | None = None
) -> dict[str, Any]:
    """Per-sample eRanks, entropies, ratios, token counts and top spectra of one sample.

    Args:
        rep: a :class:`mm_align.adapters.Representation` (stage name -> ``(tokens, dim)``
            states for every name in :data:`STAGES`; ``rep.layer(stage, layer)`` for others;
            ``rep.masks`` lets the image and joint stages share one Gram product).
        layers: extra LLM layers (non-negative, ``hidden_states`` convention) to record.
        device: where the eigen-solver runs (``None``: where the states are; ``"cpu"``).

    Returns:
        a JSON-ready dict (see docs/ARCHITECTURE.md, results.jsonl).

    Raises:
        MetricError: a stage's states have no eRank; the message names the stage.
    """
    (result,) = reduce_batch([rep], layers, device)
    if isinstance(result, MetricError):
        raise result
    return result
