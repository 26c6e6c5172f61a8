"""The alignment metrics of ``--metrics`` (RankMe, linear CKA, mutual k-NN, CKNNA, MIR) in a run.

They come from the same captured states as the eRanks, in float64 (docs/CHOICES.md,
"Neighbouring alignment metrics" and "Reference pipelines of the neighbouring metrics"):

* ``rankme``: per sample, RankMe of each stage's rows goes into the record
  (``"rankme": {stage: value}``); the summary holds the per-stage mean over samples and its
  95% percentile bootstrap interval.
* ``cka``, ``knn``, ``cknna``: dataset level, between the per-sample POOLED states: the mean
  over rows of the ``image`` stage and of the ``text`` stage (last layer), computed in
  float64. Each sample's two ``(d,)`` vectors are kept beside its record (the run's states
  sidecar). With ``pooled_features="platonic"`` (default) each ``(n, d)`` matrix is first
  prepared as platonic-rep's ``measure_alignment.py`` does (exact 0.95-quantile clamp, unit
  rows) and CKA / CKNNA add its ``1e-6`` to their denominators; ``"raw"`` compares the
  pooled states as they are.
* ``mir``: over the first ``mir_samples`` selected samples, the image-token rows and the text
  rows of the joint pass (one prompt holding both, as MIR's script) at the swept LLM layers
  and the last one, without the embedding output (layer 0), kept beside the record in the
  model's dtype. Text rows (``mir_text``): ``"after-image"`` (default), every position after
  the last image token, as MIR's ``mir.py`` slices them; ``"content"``, the text's own tokens.

The summary part reads only the run's results and kept states, in dataset order, so a
resumed run and an uninterrupted one give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mm_align.metrics.bootstrap import percentile_interval, resample_indices
from mm_align.metrics.cka import linear_cka
from mm_align.metrics.cknna import cknna
from mm_align.metrics.knn import mutual_knn
from mm_align.metrics.mir import mir_per_layer
from mm_align.metrics.platonic import PLATONIC_EPS, platonic_features
from mm_align.metrics.rankme import rankme
from mm_align.pipeline.reduce import MetricError, image_rows_of_joint
from mm_align.stages import STAGES

__all__ = ["ExtraMetrics", "extra_summary", "mir_layers"]

POOLED = ("image", "text")
"""The stages whose mean row feeds CKA, mutual k-NN and CKNNA."""
POOLED_METRICS = ("cka", "cknna", "knn")


def _pooled_key(stage: str) -> str:
    return f"pooled.{stage}"


def _mir_key(modality: str, layer: int) -> str:
    return f"mir.{modality}.{layer}"


def mir_layers(sweep: Sequence[int], num_hidden_states: int) -> tuple[int, ...]:
    """MIR's layers: the swept ones and the last, without the embedding output (index 0),
    which MIR's script skips (``hidden_states[1:]``); non-negative ``hidden_states`` indices."""
    return tuple(sorted({*sweep, num_hidden_states - 1} - {0}))


def _joint_split(rep: Any, layer: int, text_rows: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image rows, text rows)`` of the joint pass at ``layer``: ``(N_i, d)``, ``(N_t, d)``
    in the model's dtype. Image rows: the image tokens (the masks). Text rows: every position
    after the last image token (``"after-image"``) or the other rows the joint mask keeps,
    the text's own tokens (``"content"``)."""
    joint = rep.layer("joint", layer)
    is_image = image_rows_of_joint(rep)
    if is_image is None or is_image.shape[0] != joint.shape[0]:
        raise MetricError("mir: the masks do not say which joint-pass rows are image tokens")
    is_image = is_image.to(joint.device)
    if not bool(is_image.any()):
        raise MetricError("mir: the joint pass has no image rows")
    if text_rows == "content":
        text = joint[~is_image]
    else:
        try:
            sequence = rep.joint_sequence(layer)
        except (AttributeError, KeyError):
            raise MetricError("mir: this adapter keeps no joint-pass rows outside its masks; "
                              "use mir_text='content'") from None
        text = sequence[int(torch.nonzero(rep.masks["image"]).max()) + 1 :]
    if text.shape[0] == 0:
        raise MetricError("mir: the joint pass has no text rows")
    return joint[is_image], text


@dataclass(frozen=True)
class ExtraMetrics:
    """What the task computes and keeps per sample for ``metrics`` (sorted names).

    ``mir_layers``: MIR's layers (:func:`mir_layers`); ``mir_keep``: indices of the samples
    whose MIR states are kept (the first ``mir_samples`` selected: only they can be among
    the first scored ones, and MIR's states are the large ones); ``mir_text``: MIR's text
    rows (:func:`_joint_split`)."""

    metrics: tuple[str, ...]
    mir_layers: tuple[int, ...] = ()
    mir_keep: frozenset[int] = field(default_factory=frozenset)
    mir_text: str = "after-image"

    def of_sample(self, index: int, rep: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(record fields, states to keep)`` of sample ``index`` from its representation.

        Raises:
            MetricError: RankMe undefined (zero states), or MIR's rows cannot be split.
        """
        fields: dict[str, Any] = {}
        states: dict[str, torch.Tensor] = {}
        if "rankme" in self.metrics:
            try:
                fields["rankme"] = {stage: rankme(rep[stage]) for stage in STAGES}
            except ValueError as err:
                raise MetricError(f"rankme: {err}") from None
        if set(POOLED_METRICS) & set(self.metrics):
            # float64 before the mean: a bfloat16 sum over hundreds of rows loses digits.
            states.update({_pooled_key(s): rep[s].to(torch.float64).mean(0) for s in POOLED})
        if "mir" in self.metrics and index in self.mir_keep:
            for layer in self.mir_layers:
                image, text = _joint_split(rep, layer, self.mir_text)
                states[_mir_key("image", layer)], states[_mir_key("text", layer)] = image, text
        return fields, states


def _rankme_summary(results: Sequence[Mapping[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """Per-stage mean RankMe over samples and its 95% percentile bootstrap interval (the
    same resampled samples for every stage)."""
    values = {s: np.array([r["rankme"][s] for r in results], dtype=np.float64) for s in STAGES}
    idx = resample_indices(np.random.default_rng(seed), n_boot, len(results))
    return {
        "n_samples": len(results),
        "mean": {s: float(v.mean()) for s, v in values.items()},
        "ci95": {s: list(percentile_interval(v[idx].mean(axis=1), 0.95)) for s, v in values.items()},
    }


def _pooled(results: Sequence[Mapping[str, Any]], store: Any) -> dict[str, torch.Tensor]:
    """stage -> ``(n, d)`` float64 matrix of the pooled states, row i = results[i]."""
    keys = [_pooled_key(s) for s in POOLED]
    kept = [store.read_states(r["index"], keys) for r in results]
    return {s: torch.stack([k[_pooled_key(s)] for k in kept]).to(torch.float64) for s in POOLED}


def _guarded(n: int, compute: Any, **extra: Any) -> dict[str, Any]:
    """``{"value": compute(), "n_samples": n, ...}``, or the reason it has no value (too few
    samples, a constant representation) under ``"skipped"`` instead of a failed run."""
    try:
        return {"value": compute(), "n_samples": n, **extra}
    except ValueError as err:
        return {"skipped": str(err), "n_samples": n, **extra}


def _mir_summary(results: Sequence[Mapping[str, Any]], store: Any, mir_samples: int) -> dict[str, Any]:
    """MIR over the first ``mir_samples`` results holding MIR states, dataset order, one
    layer at a time (a layer's rows of every sample are in memory at once, not all layers)."""
    chosen: list[int] = []
    for r in results:  # stops at mir_samples: reading a header still opens a file
        if len(chosen) == mir_samples:
            break
        if any(k.startswith("mir.") for k in store.state_keys(r["index"])):
            chosen.append(r["index"])
    if not chosen:
        return {"skipped": "no sample kept MIR states", "n_samples": 0}
    layers = sorted(int(k.rsplit(".", 1)[1]) for k in store.state_keys(chosen[0]) if k.startswith("mir.image."))
    per_layer: dict[str, float] = {}
    try:
        for layer in layers:
            keys = [_mir_key("image", layer), _mir_key("text", layer)]
            kept = [store.read_states(i, keys) for i in chosen]
            (fd,) = mir_per_layer([torch.cat([k[keys[0]] for k in kept])], [torch.cat([k[keys[1]] for k in kept])])
            per_layer[str(layer)] = fd
    except ValueError as err:
        return {"skipped": str(err), "n_samples": len(chosen)}
    total = math.fsum(per_layer.values())  # as mir.mir: log10 of the summed distances
    if total <= 0:  # log10(0) is no number JSON can hold
        return {"skipped": "image and text tokens coincide at every layer (MIR = log10 0)",
                "n_samples": len(chosen), "layers": per_layer}
    return {"value": math.log10(total), "n_samples": len(chosen), "layers": per_layer}


def _pooled_summary(metrics: Sequence[str], results: Sequence[Mapping[str, Any]], store: Any,
                    knn_k: int, features: str) -> dict[str, Any]:
    """CKA, mutual k-NN and CKNNA between the pooled image and text states of every result,
    on platonic-rep's prepared features (each matrix on its own) or the raw ones."""
    pooled = _pooled(results, store)
    n, out, eps = len(results), {}, 0.0
    if features == "platonic":
        try:
            pooled = {stage: platonic_features(x) for stage, x in pooled.items()}
        except ValueError as err:  # NaN / Inf pooled states: no metric has a value
            return {m: {"skipped": str(err), "n_samples": n, "features": features}
                    for m in POOLED_METRICS if m in metrics}
        eps = PLATONIC_EPS
    image, text = pooled["image"], pooled["text"]
    if "cka" in metrics:
        out["cka"] = _guarded(n, lambda: linear_cka(image, text, eps=eps), features=features)
    if "knn" in metrics:
        out["knn"] = _guarded(n, lambda: mutual_knn(image, text, k=knn_k), k=knn_k, features=features)
        if "value" in out["knn"]:
            # two random k-sets of the n - 1 other samples share k / (n - 1) on average
            out["knn"]["chance"] = knn_k / (n - 1)
    if "cknna" in metrics:
        out["cknna"] = _guarded(n, lambda: cknna(image, text, k=knn_k, eps=eps), k=knn_k, features=features)
    return out


def extra_summary(
    metrics: Sequence[str],
    results: Sequence[Mapping[str, Any]],
    store: Any,
    *,
    knn_k: int = 10,
    pooled_features: str = "platonic",
    mir_samples: int = 100,
    mir_text: str = "after-image",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``summary["metrics"]``: one entry per name of ``metrics`` (see the module doc).

    Args:
        results: the run's records in dataset order; store: its store (``read_states``).
        knn_k: neighbours of mutual k-NN and CKNNA; pooled_features: ``"platonic"`` or
            ``"raw"``, recorded in their entries (``features``).
        mir_samples: samples of MIR; mir_text: how its text rows were kept, recorded in its
            entry (``text_rows``).
        n_boot, seed: RankMe's bootstrap.
    """
    out: dict[str, Any] = {}
    if "rankme" in metrics and results:
        out["rankme"] = _rankme_summary(results, n_boot, seed)
    if set(POOLED_METRICS) & set(metrics) and results:
        out.update(_pooled_summary(metrics, results, store, knn_k, pooled_features))
    if "mir" in metrics:
        out["mir"] = {**_mir_summary(results, store, mir_samples), "text_rows": mir_text}
    return out
