"""The dataset summary of a run, computed from its per-sample results only.

Because it reads nothing but results.jsonl (in dataset order), a resumed run and an
uninterrupted one get identical summaries, and anyone can recompute it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mm_align.metrics import aggregate_erank, image_text_alignment
from mm_align.metrics.bootstrap import (
    Difference,
    bootstrap_ci,
    dataset_metrics,
    format_p,
    paired_difference,
    small_sample_note,
)
from mm_align.stages import LLM_STAGES, STAGES, visual_kind


def _layer_summary(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """stage -> {layer: dataset eRank} and the per-layer alignment, from swept layers."""
    layers = list(results[0]["layer_entropies"]["image"])
    out: dict[str, Any] = {
        stage: {
            layer: aggregate_erank(r["layer_entropies"][stage][layer] for r in results)
            for layer in layers
        }
        for stage in LLM_STAGES
    }
    out["image_text_alignment"] = {
        layer: image_text_alignment(*(out[stage][layer] for stage in LLM_STAGES))
        for layer in layers
    }
    return out


def _layer_intervals(results: Sequence[Mapping[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """stage -> {layer: [lo, hi]} of the dataset eRank, and the same for the per-layer
    alignment: 95% bootstrap intervals, the same resampled samples for the three stages."""
    out: dict[str, Any] = {stage: {} for stage in (*LLM_STAGES, "image_text_alignment")}
    for layer in results[0]["layer_entropies"]["image"]:
        per_stage = {s: [r["layer_entropies"][s][layer] for r in results] for s in LLM_STAGES}
        ci = bootstrap_ci(per_stage, n_boot=n_boot, seed=seed)
        for stage in LLM_STAGES:
            out[stage][layer] = list(ci[f"erank_{stage}"])
        out["image_text_alignment"][layer] = list(ci["image_text_alignment"])
    return out


def summarize(
    results: Sequence[Mapping[str, Any]],
    n_errors: int,
    provenance: Mapping[str, Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """summary.json of a run (see docs/ARCHITECTURE.md).

    Args:
        results: per-sample records, in dataset order.
        n_errors: samples that could not be scored.
        provenance: what produced the run (model, data, versions, settings).
        n_boot, seed: bootstrap replicates and seed of the 95% intervals.
    """
    summary: dict[str, Any] = {
        "n_samples": len(results),
        "n_errors": n_errors,
        "provenance": dict(provenance),
    }
    if not results:
        return summary
    entropies = {s: [r[f"entropy_{s}"] for r in results] for s in STAGES}
    metrics = dataset_metrics(entropies)
    summary["erank"] = {s: metrics[f"erank_{s}"] for s in STAGES}
    summary["erank_mean"] = {s: aggregate_erank(entropies[s], method="mean") for s in STAGES}
    summary["image_reduction_ratio"] = metrics["image_reduction_ratio"]
    summary["image_text_alignment"] = metrics["image_text_alignment"]
    summary["ci95"] = {
        k: list(v) for k, v in bootstrap_ci(entropies, n_boot=n_boot, seed=seed).items()
    }
    summary["tokens_mean"] = {
        s: sum(r["tokens"][s] for r in results) / len(results) for s in STAGES
    }
    if "layer_entropies" in results[0]:
        summary["layers"] = _layer_summary(results)
        summary["layers_ci95"] = _layer_intervals(results, n_boot, seed)
    return summary


def diff_erank_summary(
    trained: Sequence[Mapping[str, Any]],
    untrained: Sequence[Mapping[str, Any]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Diff-eRank of a VLM's LLM: dataset eRank with the LLM untrained minus trained.

    Args:
        trained, untrained: per-sample results of the two runs; only samples scored in both
            are used, paired by id.

    Returns:
        ``n_paired`` and, per LLM-stage eRank and the alignment, ``a`` (trained), ``b``
        (untrained), ``diff`` = b - a (the paper's Diff-eRank for eRanks), a paired
        bootstrap ``ci95`` and ``p_value``.
    """
    by_id = {r["id"]: r for r in untrained}
    pairs = [(r, by_id[r["id"]]) for r in trained if r["id"] in by_id]
    if not pairs:
        return {"n_paired": 0}

    def entropies(side: int) -> dict[str, list[float]]:
        return {s: [p[side][f"entropy_{s}"] for p in pairs] for s in LLM_STAGES}

    diffs = paired_difference(entropies(0), entropies(1), n_boot=n_boot, seed=seed)
    return {"n_paired": len(pairs), **diffs}


# Fewer shared samples than this cannot carry a paired bootstrap.
MIN_PAIRED = 2


def control_differences(
    real: Sequence[Mapping[str, Any]],
    controls: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Difference]]:
    """How far each control or perturbation moved every metric from the real run.

    Args:
        real: the real run's per-sample results.
        controls: control name -> its per-sample results (the same samples, transformed).

    Returns:
        ``{name: {metric: {"a": real, "b": control, "diff": control - real, "ci95",
        "p_value"}}}``: a paired bootstrap (:func:`paired_difference`) over the ids scored
        in both runs, in the real run's order; a control sharing fewer than 2 ids is left out.
    """
    out = {}
    for name, records in controls.items():
        by_id = {r["id"]: r for r in records}
        pairs = [(r, by_id[r["id"]]) for r in real if r["id"] in by_id]
        if len(pairs) < MIN_PAIRED:
            continue
        real_h, control_h = ({s: [p[side][f"entropy_{s}"] for p in pairs] for s in STAGES} for side in (0, 1))
        out[name] = paired_difference(real_h, control_h, n_boot=n_boot, seed=seed)
    return out


_LABELS = {
    "erank_vision": "eRank1 vision encoder",
    "erank_projector": "eRank2 projector",
    "erank_image": "eRank3 LLM image",
    "erank_text": "eRank4 LLM text",
    "erank_joint": "eRank5 LLM image+text",
    "image_reduction_ratio": "Image Reduction Ratio",
    "image_text_alignment": "Image-Text Alignment",
}


def _row(label: str, value: float, interval: Sequence[float], p: float | None = None) -> str:
    tail = "" if p is None else f"   {format_p(p)}"
    return f"  {label:<26} {value:>10.4f}   [{interval[0]:.4f}, {interval[1]:.4f}]{tail}"


def difference_rows(title: str, diffs: Mapping[str, Any]) -> list[str]:
    """``title``, then one line per metric of ``diffs`` (metric -> Difference): the
    difference, its 95% interval and p-value."""
    rows = [f"  {title}"]
    for key, label in _LABELS.items():
        if isinstance(d := diffs.get(key), Mapping):
            rows.append(_row(label, d["diff"], d["ci95"], d["p_value"]))
    return rows


def format_table(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a summary, for the terminal: the metrics with their
    95% intervals, then each control's and the untrained baseline's paired difference."""
    prov = summary.get("provenance", {})
    lines = [f"samples scored: {summary['n_samples']}   errors: {summary['n_errors']}   "
             f"device: {prov.get('device', '?')}   dtype: {prov.get('dtype', '?')}"]
    if "erank" not in summary:
        return "\n".join(lines)
    ci = summary.get("ci95", {})
    values = {**{f"erank_{s}": v for s, v in summary["erank"].items()},
              **{k: summary[k] for k in ("image_reduction_ratio", "image_text_alignment")}}
    lines.append(f"  {'metric':<26} {'value':>10}   95% CI")
    kind = visual_kind(prov.get("modality"))  # a run of clips: the Video Reduction Ratio
    lines += [_row(label.replace("Image Red", f"{kind} Red"), values[key], ci.get(key, (math.nan, math.nan)))
              for key, label in _LABELS.items()]
    if note := small_sample_note(summary["n_samples"]):
        lines.append(f"  note: {note}")
    for name, diffs in summary.get("controls", {}).items():
        lines += difference_rows(f"control {name} − real run (paired 95% CI, p)", diffs)
    if "diff_erank" in summary:
        lines += difference_rows("untrained LLM − trained (Diff-eRank for eRanks)", summary["diff_erank"])
    return "\n".join(lines)
