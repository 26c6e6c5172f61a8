"""``RUN_DIR/report.html``: one self-contained page describing one run."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mm_align._version import __version__
from mm_align.metrics.bootstrap import small_sample_note
from mm_align.report import plots
from mm_align.report.blocks import RATIOS, layer_figure, metric_figures, metric_label, metric_table
from mm_align.report.controls import control_differences_block
from mm_align.report.fmt import AUDIO_NOTE, METRIC_LABELS, STAGE_LABELS, interval, label_of, num, p_value
from mm_align.report.html import (
    Markup,
    esc,
    figure,
    join,
    kv_table,
    note,
    page,
    section,
    svg_figure,
    table,
    tag,
)
from mm_align.report.interactive import SCRIPT, interactive_table
from mm_align.report.thumbs import thumbnail_data_uri
from mm_align.rundir import Run
from mm_align.stages import LLM_STAGES, METRICS, STAGES

__all__ = ["render_report"]

# Samples shown at each end of the alignment ranking, and the longest text shown per sample.
N_EXTREMES = 5
MAX_TEXT = 400
MAX_ERRORS = 200
# Samples with a row in the per-sample table, each linked from its point in the scatter.
MAX_LINKED = 200
ALIGN = "image_text_alignment"


def _cards(run: Run) -> Markup:
    metrics, cis = run.metrics(), run.ci()
    cards = []
    for key in RATIOS:
        ci = cis.get(key)
        cards.append(
            tag(
                "div",
                join(
                    [
                        tag("div", label_of(key, run.provenance.get("modality")), class_="label"),
                        tag("div", num(metrics.get(key)), class_="value"),
                        tag("div", f"95% CI {interval(ci)}" if ci else "no interval", class_="ci"),
                    ]
                ),
                class_="card",
            )
        )
    cards.append(
        tag(
            "div",
            join(
                [
                    tag("div", "Samples scored", class_="label"),
                    tag("div", str(run.n_samples), class_="value"),
                    tag("div", f"{run.n_errors} failed (see Errors)", class_="ci"),
                    *[tag("div", note, class_="ci") for note in [small_sample_note(run.n_samples)] if note],
                ]
            ),
            class_="card",
        )
    )
    return tag("div", join(cards), class_="cards")


def _overview(run: Run) -> Markup:
    metrics, cis, means = run.metrics(), run.ci(), run.erank_mean()
    rows = []
    for key in METRICS:
        if key not in metrics:
            continue
        stage = key.removeprefix("erank_")
        rows.append(
            [
                metric_label(key, run.provenance.get("modality")),
                num(metrics[key]),
                interval(cis.get(key)),
                num(means.get(stage)) if key.startswith("erank_") else "–",
            ]
        )
    parts = [_cards(run), control_differences_block(run.summary)]
    if "audio" in (run.provenance.get("modality") or []):
        parts.insert(0, note(AUDIO_NOTE))
    if note_text := run.model_note:
        parts.insert(0, note(f"Model note: {note_text}", "warn"))
    parts.append(
        table(
            ["Metric", "Value (Algorithm a)", "95% CI", "Mean of per-sample eRanks (Algorithm b)"],
            rows,
            numeric=(1, 2, 3),
        )
    )
    parts.append(
        note(
            "Dataset eRank = exp(mean per-sample entropy), the paper's Algorithm (a); both ratios "
            "are computed from these dataset eRanks, as in the paper's tables. Algorithm (b), the "
            "mean of per-sample eRanks, is shown for reference and is never smaller (Jensen)."
        )
    )
    return join(parts)


def _pipeline(run: Run) -> Markup:
    metrics = run.metrics()
    eranks = {s: metrics[f"erank_{s}"] for s in STAGES if f"erank_{s}" in metrics}
    ratios = {k: metrics[k] for k in RATIOS if k in metrics}
    return figure(
        plots.to_data_uri(plots.pipeline_diagram(eranks, run.ci(), ratios)),
        "pipeline stages with their dataset eRanks",
        "Box bars share one scale: the longest bar is the largest eRank.",
    )


def _distributions(run: Run) -> Markup:
    panels = {k: run.sample_values(k) for k in RATIOS}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return note("No per-sample ratios in results.jsonl.")
    metrics = run.metrics()
    return join(
        [
            figure(
                plots.to_data_uri(
                    plots.histograms(panels, {k: metrics[k] for k in panels if k in metrics})
                ),
                "histograms of per-sample ratios",
            ),
            note(
                "Per-sample ratios use each sample's own eRanks. The dataset value (dashed line) "
                "comes from the dataset eRanks, so it need not sit at the histogram's mean."
            ),
        ]
    )


def _value(record: dict[str, Any], key: str) -> float:
    """``record[key]`` as a float; NaN when missing or not a finite number."""
    v = record.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return math.nan
    return float(v)


def _ranked(run: Run) -> list[dict[str, Any]]:
    """Results with a finite alignment, ascending by alignment."""
    with_value = [
        (v, r) for r in run.results if not math.isnan(v := _value(r, "image_text_alignment"))
    ]
    return [r for _, r in sorted(with_value, key=lambda pair: pair[0])]


def _spectra(ranked: Sequence[dict[str, Any]]) -> Markup:
    with_spectra = [r for r in ranked if isinstance(r.get("spectra"), dict) and r["spectra"]]
    if not with_spectra:
        return note("No eigenvalue spectra in results.jsonl.")
    picks = {"lowest": 0, "median": len(with_spectra) // 2, "highest": len(with_spectra) - 1}
    panels: dict[str, Any] = {}
    for name, i in picks.items():
        r = with_spectra[i]
        title = f"{name} alignment: {r.get('id')} ({num(r.get('image_text_alignment'))})"
        panels.setdefault(title, {s: r["spectra"][s] for s in STAGES if s in r["spectra"]})
    return figure(
        plots.to_data_uri(plots.spectra(panels)),
        "eigenvalue spectra of representative samples",
        "Top normalised covariance eigenvalues per stage; a flatter curve means a higher eRank. "
        f"Eigenvalues below {plots.SPECTRUM_RANGE:g} of the largest are round-off and not drawn.",
    )


def _layers(run: Run) -> Markup:
    layers = run.layers()
    align = run.layer_alignment()
    all_layers = sorted(set().union(*(set(v) for v in layers.values())))
    rows = [
        [
            str(layer),
            *(num(layers.get(s, {}).get(layer)) for s in LLM_STAGES),
            num(align.get(layer)),
        ]
        for layer in all_layers
    ]
    return join(
        [
            layer_figure({run.name: run}),
            table(
                ["Layer", "eRank image", "eRank text", "eRank joint", "Alignment"],
                rows,
                numeric=(0, 1, 2, 3, 4),
            ),
        ]
    )


def _thumb(record: dict[str, Any], size: int = 96) -> Markup:
    uri = thumbnail_data_uri(record.get("image"), size)
    css = "thumb" if size == 96 else "thumb small"
    if uri is None:
        why = "image file missing" if record.get("image") else "no image file"
        return tag("div", why, class_=css)
    return Markup(f'<img class="{css}" src="{esc(uri)}" alt="{esc(record.get("id"))}">')


def _shorten(text: Any, limit: int = MAX_TEXT) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit] + " …"


def _sample_rows(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in records:
        rows.append(
            [
                _thumb(r),
                tag("code", r.get("id", "?")),
                num(r.get("image_text_alignment")),
                num(r.get("image_reduction_ratio")),
                tag("div", _shorten(r.get("text")), class_="sample-text"),
            ]
        )
    return rows


def _samples(ranked: Sequence[dict[str, Any]]) -> Markup:
    if not ranked:
        return note("No scored samples in results.jsonl.")
    headers = ["Image", "Id", "Alignment", "Reduction ratio", "Text"]
    k = min(N_EXTREMES, len(ranked))
    return join(
        [
            tag("h3", f"Lowest alignment ({k})"),
            table(headers, _sample_rows(ranked[:k]), numeric=(2, 3)),
            tag("h3", f"Highest alignment ({k})"),
            table(headers, _sample_rows(ranked[::-1][:k]), numeric=(2, 3)),
        ]
    )


def _linked(points: Sequence[tuple[int, dict[str, Any]]], limit: int) -> set[int]:
    """Positions of the samples that get a row in the per-sample table: all of them, or
    ``limit`` spread evenly over the alignment ranking (lowest and highest included)."""
    if len(points) <= limit:
        return {i for i, _ in points}
    # a sample without an alignment sorts last, after the highest
    ranked = sorted(points, key=lambda p: (math.isnan(_value(p[1], ALIGN)), _value(p[1], ALIGN)))
    picks = np.linspace(0, len(ranked) - 1, limit).round().astype(int)
    return {ranked[k][0] for k in picks}


def _summary_line(record: dict[str, Any]) -> str:
    """Id and the scatter's three numbers of one sample, the tooltip of its point."""
    return (
        f"{record.get('id', '?')}: eRank3 {num(_value(record, 'erank_image'))}, "
        f"eRank4 {num(_value(record, 'erank_text'))}, alignment {num(_value(record, ALIGN))}"
    )


def _per_sample_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> Markup:
    """One row per ``(anchor, record)``, with the anchor as the row's id."""
    cells = [
        [
            _thumb(r, 64),
            tag("code", r.get("id", "?")),
            num(_value(r, "erank_image")),
            num(_value(r, "erank_text")),
            num(_value(r, ALIGN)),
            tag("div", _shorten(r.get("text"), 160), class_="sample-text"),
        ]
        for _, r in rows
    ]
    return interactive_table(
        "per-sample",
        ["Image", "Id", "eRank3 image", "eRank4 text", "Alignment", "Text"],
        cells,
        numeric=(2, 3, 4),
        caption=f"{len(rows)} samples in results.jsonl order; click a header to sort. "
        "Download CSV saves the rows shown; results.jsonl holds every sample.",
        row_ids=[a for a, _ in rows],
        no_data=(0,),
    )


def _per_sample(run: Run) -> Markup:
    """Scatter of eRank3 (image) against eRank4 (text), one point per sample, each linked
    point jumping to the sample's row (thumbnail, text) in the table under it."""
    points = [
        (i, r)
        for i, r in enumerate(run.results)
        if not any(math.isnan(_value(r, k)) for k in ("erank_image", "erank_text"))
    ]
    if not points:
        return note("No per-sample eRank3 and eRank4 in results.jsonl.")
    linked = _linked(points, MAX_LINKED)
    anchor = {i: f"sample-{i}" for i in linked}  # results.jsonl position: unique, URL-safe
    fig = plots.sample_scatter(
        [_value(r, "erank_image") for _, r in points],
        [_value(r, "erank_text") for _, r in points],
        [_value(r, ALIGN) for _, r in points],
        [f"#{anchor[i]}" if i in linked else None for i, _ in points],
        (STAGE_LABELS["image"], STAGE_LABELS["text"], METRIC_LABELS[ALIGN]),
    )
    titles = {f"#{anchor[i]}": _summary_line(r) for i, r in points if i in linked}
    diagonal = ("dashed: eRank3 = eRank4" if plots.diagonal_shown(fig) else "the eRank3 = eRank4 "
                "diagonal lies outside the plotted ranges, so it is not drawn")
    caption = f"One point per sample, coloured by its alignment; {diagonal}. " + (
        "Click a point to jump to its row below."
        if len(linked) == len(points)
        else f"{len(linked)} of {len(points)} points, spread evenly over the alignment "
        "ranking, link to a row below; the others are drawn without a link."
    )
    return join(
        [
            svg_figure(plots.to_inline_svg(fig, titles), "scatter of per-sample eRanks", caption),
            _per_sample_table([(anchor[i], r) for i, r in points if i in linked]),
        ]
    )


_STAGE_NAMES = {"vision": "vision encoder", "projector": "projector", "image": "LLM, image alone",
                "text": "LLM, text alone", "joint": "LLM, image + text"}


def _extra_row(label: str, entry: Any, note_text: str) -> list[Any]:
    """One row of the alignment-metrics table: the value, or why there is none."""
    entry = entry if isinstance(entry, dict) else {}
    skipped = entry.get("skipped")
    value = entry.get("value")
    return [label, num(value if isinstance(value, (int, float)) else None), "–",
            str(entry.get("n_samples", "–")), f"not computed: {skipped}" if skipped else note_text]


def _extra_metrics(run: Run) -> Markup:
    """The ``--metrics`` of the run (``summary["metrics"]``), as the pipeline computed them."""
    metrics = run.extra_metrics()
    rows: list[list[Any]] = []
    rankme: dict[str, Any] = metrics["rankme"] if isinstance(metrics.get("rankme"), dict) else {}
    for stage in STAGES:
        if isinstance(mean := rankme.get("mean", {}).get(stage), (int, float)):
            rows.append([f"RankMe · {_STAGE_NAMES[stage]}", num(mean), interval(rankme.get("ci95", {}).get(stage)),
                         str(rankme.get("n_samples", "–")), "mean over samples"])
    if "cka" in metrics:
        rows.append(_extra_row("Linear CKA, pooled image vs text", metrics["cka"], "higher = more similar"))
    if "knn" in metrics:
        k = metrics["knn"].get("k", "?") if isinstance(metrics["knn"], dict) else "?"
        chance = metrics["knn"].get("chance") if isinstance(metrics["knn"], dict) else None
        rows.append(_extra_row(f"Mutual k-NN (k = {k}), pooled image vs text", metrics["knn"],
                               "higher = more shared neighbours" + (
                                   f"; chance level {num(chance)}" if isinstance(chance, float) else "")))
    if "cknna" in metrics:
        k = metrics["cknna"].get("k", "?") if isinstance(metrics["cknna"], dict) else "?"
        rows.append(_extra_row(f"CKNNA (k = {k}), pooled image vs text", metrics["cknna"],
                               "higher = more similar neighbourhoods"))
    mir = metrics.get("mir") if isinstance(metrics.get("mir"), dict) else None
    if mir is not None:
        rows.append(_extra_row("MIR (log10 of summed FD)", mir, "LOWER = better integrated; text rows: "
                               + str(mir.get("text_rows", "content"))))
    features = {str(m["features"]) for m in metrics.values() if isinstance(m, dict) and "features" in m}
    prepared = f"; pooled features: {', '.join(sorted(features))}" if features else ""
    parts: list[Any] = [table(["Metric", "Value", "95% CI", "Samples", "Note"], rows, numeric=(1, 2, 3),
                              caption="Computed by the run from the same captured states as the eRanks "
                              f"(docs/CHOICES.md); pooled = mean of a stage's rows, last layer{prepared}.")]
    layers = mir.get("layers") if mir else None
    if isinstance(layers, dict) and layers:
        parts.append(table(["Layer", "Frechet distance"], [[str(k), num(v)] for k, v in layers.items()],
                           numeric=(0, 1), caption="MIR's per-layer Frechet distances."))
    return join(parts)


def _diff_erank(run: Run) -> Markup:
    """The untrained-LLM baseline's paired differences (``score --baseline untrained``)."""
    diffs = run.summary.get("diff_erank") or {}
    rows = [
        [metric_label(key), num(d["a"]), num(d["b"]), num(d["diff"]), interval(d["ci95"]),
         p_value(d["p_value"])]
        for key in METRICS
        if isinstance(d := diffs.get(key), dict)
    ]
    if not rows:
        return Markup("")
    return join(
        [
            tag("h3", "Diff-eRank of the LLM (untrained minus trained)"),
            table(["Metric", "Trained", "Untrained LLM", "Difference", "95% CI", "p"], rows,
                  numeric=(1, 2, 3, 4),
                  caption=f"Paired bootstrap over the {diffs.get('n_paired', 0)} samples "
                  "both runs scored; for eRanks the difference is the paper's Diff-eRank."),
        ]
    )


def _controls(run: Run) -> Markup:
    runs = {run.name: run, **{f"control: {name}": c for name, c in run.controls.items()}}
    return join(
        [
            note(
                "Control runs use the same model on perturbed inputs; a real alignment effect "
                "should separate the main run from them."
            ),
            metric_table(runs),
            metric_figures(runs),
            _diff_erank(run),
        ]
    )


def _errors(run: Run) -> Markup:
    if not run.errors:
        return note(
            "No sample failed."
            if run.n_errors == 0
            else f"summary.json counts {run.n_errors} errors but errors.jsonl is missing or empty."
        )
    by_stage: dict[str, int] = {}
    for e in run.errors:
        by_stage[str(e.get("stage", "?"))] = by_stage.get(str(e.get("stage", "?")), 0) + 1
    counts = ", ".join(f"{stage}: {n}" for stage, n in sorted(by_stage.items()))
    rows = [
        [tag("code", e.get("id", "?")), e.get("stage", "?"), e.get("reason", "")]
        for e in run.errors[:MAX_ERRORS]
    ]
    more = len(run.errors) - MAX_ERRORS
    return join(
        [
            tag("p", f"{len(run.errors)} samples failed ({counts})."),
            table(["Id", "Stage", "Reason"], rows),
            note(f"… and {more} more in errors.jsonl.") if more > 0 else "",
        ]
    )


def render_report(run: Run) -> str:
    """The report page of ``run`` as an HTML string."""
    ranked = _ranked(run)
    sections: list[tuple[str, str, Markup]] = [
        ("overview", "Overview", _overview(run)),
        ("provenance", "Provenance", kv_table(run.provenance) if run.provenance
         else note("summary.json has no provenance.", "warn")),
        ("pipeline", "Pipeline", _pipeline(run)),
        ("distributions", "Distributions", _distributions(run)),
        ("spectra", "Spectra", _spectra(ranked)),
        ("per-sample", "Per sample", _per_sample(run)),
    ]
    if run.layers():
        sections.append(("layers", "Layers", _layers(run)))
    if run.extra_metrics():
        sections.append(("metrics", "Other metrics", _extra_metrics(run)))
    sections.append(("samples", "Samples", _samples(ranked)))
    if run.controls:
        sections.append(("controls", "Controls", _controls(run)))
    sections.append(("errors", "Errors", _errors(run)))
    if run.problems:
        sections.append(("problems", "Reading problems", table(["Problem"], [[p] for p in run.problems])))

    titles = {
        "overview": "Overview",
        "provenance": "Model and data provenance",
        "pipeline": "Pipeline stages",
        "distributions": "Per-sample ratios",
        "spectra": "Eigenvalue spectra",
        "per-sample": "Per-sample eRanks: image (eRank3) against text (eRank4)",
        "layers": "Per-layer eRank",
        "metrics": "Neighbouring alignment metrics",
        "samples": "Samples with the lowest and highest alignment",
        "controls": "Control runs",
        "errors": "Errors",
        "problems": "Problems reading the run",
    }
    subtitle = " · ".join(
        p for p in (run.model_name, f"{run.n_samples} samples", str(run.path)) if p
    )
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return page(
        f"mm-align report: {run.name}",
        subtitle,
        [(a, label, section(titles[a], body, anchor=a)) for a, label, body in sections],
        footer=f"Generated by mm-align {__version__} on {stamp}. Self-contained: "
        "figures and thumbnails are embedded.",
        script=SCRIPT,
    )
