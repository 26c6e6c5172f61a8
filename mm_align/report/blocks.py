"""Page blocks shared by the run report and the comparison page: several runs' metrics
side by side, as a table and as figures."""

from __future__ import annotations

from collections.abc import Mapping

from mm_align.report import plots
from mm_align.report.fmt import METRIC_LABELS, interval, num
from mm_align.report.html import Markup, figure, join, table, tag
from mm_align.rundir import Run
from mm_align.stages import METRICS, STAGES

__all__ = ["RATIOS", "layer_figure", "metric_figures", "metric_label", "metric_table"]

RATIOS = ("image_reduction_ratio", "image_text_alignment")


def metric_label(key: str) -> Markup:
    """Readable name of a metric with its key underneath, so the page names both."""
    return join([METRIC_LABELS.get(key, key), Markup("<br>"), tag("code", key)])


def metric_table(runs: Mapping[str, Run]) -> Markup:
    """Rows = metrics, columns = runs; each cell the value and its 95 % interval."""
    metrics = {label: run.metrics() for label, run in runs.items()}
    cis = {label: run.ci() for label, run in runs.items()}
    rows = []
    for key in METRICS:
        if not any(key in m for m in metrics.values()):
            continue
        cells = [
            join(
                [
                    num(metrics[label].get(key)),
                    Markup("<br>"),
                    tag("small", interval(cis[label].get(key))),
                ]
            )
            for label in runs
        ]
        rows.append([metric_label(key), *cells])
    n_row = [
        "samples scored / errors",
        *(f"{run.n_samples} / {run.n_errors}" for run in runs.values()),
    ]
    return table(
        ["Metric", *runs],
        [*rows, n_row],
        numeric=range(1, len(runs) + 1),
        caption="Dataset-level value (exp of mean entropy) and 95% bootstrap interval",
    )


def metric_figures(runs: Mapping[str, Run]) -> Markup:
    """Grouped bars of the five eRanks and of the two ratios, with their intervals."""
    values = {label: run.metrics() for label, run in runs.items()}
    cis = {label: run.ci() for label, run in runs.items()}
    stages = [f"erank_{s}" for s in STAGES if any(f"erank_{s}" in v for v in values.values())]
    ratios = [k for k in RATIOS if any(k in v for v in values.values())]
    parts = []
    if stages:
        parts.append(
            figure(
                plots.grouped_bars(values, stages, cis, "Dataset eRank per stage", "eRank"),
                "grouped bars of the five dataset eRanks per run",
            )
        )
    if ratios:
        parts.append(
            figure(
                plots.grouped_bars(values, ratios, cis, "Ratios (higher is better)", "ratio"),
                "grouped bars of the two ratios per run with 95% intervals",
            )
        )
    return join(parts)


def layer_figure(runs: Mapping[str, Run]) -> Markup:
    """Per-layer eRank and alignment curves of the runs that swept layers (empty if none)."""
    swept = {label: run.layers() for label, run in runs.items() if run.layers()}
    if not swept:
        return Markup("")
    alignment = {label: runs[label].layer_alignment() for label in swept}
    # with one curve set the legend shows stages only, so name the run(s) it belongs to
    caption = None
    if len(runs) > 1:
        skipped = [label for label in runs if label not in swept]
        caption = f"Runs with a layer sweep: {', '.join(swept)}" + (
            f"; without: {', '.join(skipped)}" if skipped else ""
        )
    return figure(
        plots.layer_curves(swept, alignment), "per-layer eRank and alignment curves", caption
    )
