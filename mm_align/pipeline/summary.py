"""The dataset summary of a run, computed from its per-sample results only.

Because it reads nothing but results.jsonl (in dataset order), a resumed run and an
uninterrupted one get identical summaries, and anyone can recompute it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mm_align.metrics import aggregate_erank, image_text_alignment
from mm_align.metrics.bootstrap import (
    bootstrap_ci,
    dataset_metrics,
    paired_difference,
)
from mm_align.stages import LLM_STAGES, STAGES


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


def format_table(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a summary, for the terminal."""
    lines = [f"samples scored: {summary['n_samples']}   errors: {summary['n_errors']}"]
    if "erank" not in summary:
        return "\n".join(lines)
    ci = summary.get("ci95", {})
    labels = {
        "vision": "eRank1 vision encoder",
        "projector": "eRank2 projector",
        "image": "eRank3 LLM image",
        "text": "eRank4 LLM text",
        "joint": "eRank5 LLM image+text",
    }

    def row(label: str, value: float, key: str) -> str:
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        return f"  {label:<26} {value:>10.4f}   [{lo:.4f}, {hi:.4f}]"

    lines.append(f"  {'metric':<26} {'value':>10}   95% CI")
    for stage, label in labels.items():
        lines.append(row(label, summary["erank"][stage], f"erank_{stage}"))
    lines.append(row("Image Reduction Ratio", summary["image_reduction_ratio"], "image_reduction_ratio"))
    lines.append(row("Image-Text Alignment", summary["image_text_alignment"], "image_text_alignment"))
    for stage in LLM_STAGES if "diff_erank" in summary else ():
        d = summary["diff_erank"].get(f"erank_{stage}")
        if d:
            lo, hi = d["ci95"]
            lines.append(f"  {'Diff-eRank LLM ' + stage:<26} {d['diff']:>10.4f}   [{lo:.4f}, {hi:.4f}]")
    return "\n".join(lines)
