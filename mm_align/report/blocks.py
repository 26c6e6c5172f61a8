"""Page blocks shared by the run report and the comparison page: several runs' metrics
side by side, as a table and as figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mm_align.report import plots
from mm_align.report.fmt import interval, label_of, num, p_value
from mm_align.report.html import Markup, figure, join, table, tag
from mm_align.rundir import Run
from mm_align.stages import METRICS, STAGES

__all__ = [
    "RATIOS",
    "layer_figure",
    "layer_intervals",
    "metric_figures",
    "metric_label",
    "metric_table",
]

RATIOS = ("image_reduction_ratio", "image_text_alignment")


def metric_label(key: str, modality: object = None) -> Markup:
    """Readable name of a metric with its key underneath, so the page names both (the
    reduction ratio of a run of clips: "Video reduction ratio")."""
    return join([label_of(key, modality), Markup("<br>"), tag("code", key)])


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
                plots.to_data_uri(
                    plots.grouped_bars(values, stages, cis, "Dataset eRank per stage", "eRank")
                ),
                "grouped bars of the five dataset eRanks per run",
            )
        )
    if ratios:
        parts.append(
            figure(
                plots.to_data_uri(
                    plots.grouped_bars(values, ratios, cis, "Ratios (higher is better)", "ratio")
                ),
                "grouped bars of the two ratios per run with 95% intervals",
            )
        )
    return join(parts)


def layer_intervals(run: Run) -> dict[str, dict[int, tuple[float, float]]]:
    """The 95 % intervals of the per-layer dataset values (:meth:`Run.layer_ci`)."""
    return run.layer_ci()


def layer_figure(runs: Mapping[str, Run]) -> Markup:
    """Per-layer eRank and alignment curves of the runs that swept layers (empty if none),
    with 95 % bands where the runs recorded ``layers_ci95``."""
    swept = {label: run.layers() for label, run in runs.items() if run.layers()}
    if not swept:
        return Markup("")
    alignment = {label: runs[label].layer_alignment() for label in swept}
    intervals = {label: layer_intervals(runs[label]) for label in swept}
    notes = []
    # with one curve set the legend shows stages only, so name the run(s) it belongs to
    if len(runs) > 1:
        skipped = [label for label in runs if label not in swept]
        notes.append(
            f"Runs with a layer sweep: {', '.join(swept)}"
            + (f"; without: {', '.join(skipped)}" if skipped else "")
            + "."
        )
    if any(intervals.values()):
        notes.append("Shaded bands: 95% bootstrap intervals from summary.json (layers_ci95).")
    else:
        notes.append("No per-layer intervals recorded (summary.json has no layers_ci95).")
    return figure(
        plots.to_data_uri(plots.layer_curves(swept, alignment, intervals)),
        "per-layer eRank and alignment curves",
        " ".join(notes),
    )


def difference_cell(d: Any, values: bool = False) -> Markup | str:
    """One paired or unpaired difference (``Difference``: ``a``, ``b``, ``diff``, ``ci95``,
    ``p_value``) as a table cell; with ``values`` also ``a → b``. ``–`` when there is none."""
    if not isinstance(d, Mapping):
        return "–"
    head = [tag("small", f"{num(d['a'])} → {num(d['b'])}"), Markup("<br>")] if values else []
    return join([*head, num(d["diff"]), Markup("<br>"), tag("small", interval(d["ci95"])),
                 Markup("<br>"), tag("small", p_value(d["p_value"]))])


def difference_rows(columns: Sequence[Mapping[str, Any]], values: bool = False) -> list[list[Any]]:
    """One row per metric that any column holds: its label, then each column's cell."""
    return [[metric_label(key), *(difference_cell(c.get(key), values) for c in columns)]
            for key in METRICS if any(key in c for c in columns)]
