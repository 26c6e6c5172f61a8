"""Runs as a table, one row per run, ready for a paper: ``mm-align export`` writes it as CSV,
JSON, Markdown or LaTeX (:mod:`mm_align.pipeline.export_format`), and ``score`` /
``compare`` print its Markdown form.

A row (:func:`export_row`) is a flat mapping, so ``pandas.read_csv`` / ``pandas.read_json``
give one column per field:

* ``run``, ``command`` (``score`` or ``diff-erank``), ``model``, ``revision`` (the one asked
  for, else the hub commit), ``dtype``, ``modality`` (what the samples gave: ``image``,
  ``images``, ``video`` or ``audio``, several joined by ``+``; empty for runs that predate it
  and for text runs), ``data`` (path or hub name), ``data_fingerprint``,
  ``selection`` (which samples), ``n`` (scored), ``n_errors``; a sweep's members also
  ``step`` (the checkpoint step the sweep read from the member's name);
* ``score`` runs: each metric (``erank_vision`` ... ``image_text_alignment``, Algorithm (a))
  with its interval; for each control, perturbation and the untrained baseline,
  ``diff_<name>_<metric>`` (``name`` minus the real run, paired on the same samples) with
  its interval and ``_p`` (two-sided p-value); with swept layers, ``<metric>_layer<L>`` for
  ``erank_image``, ``erank_text``, ``erank_joint`` and ``image_text_alignment`` at each
  layer ``L`` (``output_hidden_states`` numbering: layer 0 is the embeddings), with intervals;
* ``diff-erank`` runs: ``diff_erank`` (Algorithm (a), the paper's) and ``diff_erank_mean``
  (Algorithm (b)) with their intervals, ``erank_trained`` and ``erank_untrained``.

Interval columns name their level and method: ``<value>_ci95_lo_bootstrap`` and
``<value>_ci95_hi_bootstrap`` are the bounds of the 95 % percentile bootstrap interval over
samples (:mod:`mm_align.metrics.bootstrap`).

A compare folder (``compare.json``, :func:`compare_rows`) gives one row per compared run:
``run``, ``against`` (the baseline), ``mode`` (paired / unpaired), ``n_shared``,
``same_data``, then for each metric ``diff_<metric>`` (run minus baseline), its interval and
``diff_<metric>_p``.

A column that is empty in every row is left out (an all-empty ``revision`` would load into
pandas as floats); other missing values are None (an empty CSV cell, JSON null).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mm_align.pipeline.comparison import run_labels
from mm_align.pipeline.export_format import CI_HI, CI_LO, to_markdown
from mm_align.rundir import Run, is_finished, load_run, read_series, series_kind
from mm_align.stages import LLM_STAGES, METRICS

__all__ = ["compare_rows", "export_row", "export_rows", "finish_rows", "folder_rows", "run_table"]

COMPARISON = "compare.json"
LAYER_METRICS = (*(f"erank_{s}" for s in LLM_STAGES), "image_text_alignment")


def _with_interval(row: dict[str, Any], key: str, value: Any, interval: Any) -> None:
    row[key] = value
    lo, hi = interval if isinstance(interval, Sequence) and len(interval) == 2 else (None, None)
    row[key + CI_LO], row[key + CI_HI] = lo, hi


def _with_difference(row: dict[str, Any], key: str, d: Any) -> None:
    if isinstance(d, Mapping):
        _with_interval(row, key, d.get("diff"), d.get("ci95"))
        row[f"{key}_p"] = d.get("p_value")


def _differences(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Name -> {metric: Difference} of the controls and the untrained baseline of a run."""
    diffs = dict(summary.get("controls") or {})
    if isinstance(summary.get("diff_erank"), Mapping):
        diffs["untrained"] = summary["diff_erank"]
    return diffs


def _layer_columns(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {}
    values = {f"erank_{s}": v for s, v in run.layers().items()}
    if alignment := run.layer_alignment():
        values["image_text_alignment"] = alignment
    intervals = run.layer_ci()
    for key in LAYER_METRICS:
        ci = intervals.get(key.removeprefix("erank_"), {})
        for layer, value in values.get(key, {}).items():
            _with_interval(row, f"{key}_layer{layer}", value, ci.get(layer))
    return row


def _score_columns(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {}
    metrics, cis = run.metrics(), run.ci()
    for key in METRICS:
        _with_interval(row, key, metrics.get(key), cis.get(key))
    for name, diffs in _differences(run.summary).items():
        for key in METRICS:
            _with_difference(row, f"diff_{name}_{key}", diffs.get(key))
    row.update(_layer_columns(run))
    return row


def _diff_erank_columns(run: Run) -> dict[str, Any]:
    summary, row = run.summary, dict[str, Any]()
    ci = summary.get("ci95") or {}
    _with_interval(row, "diff_erank", summary["diff_erank"]["paper"], ci.get("diff_erank"))
    _with_interval(row, "diff_erank_mean", summary["diff_erank"].get("mean"), ci.get("diff_erank_mean"))
    for model in ("trained", "untrained"):
        row[f"erank_{model}"] = (summary.get("erank") or {}).get(model)
    return row


def export_row(label: str, run: Run, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One run as a flat row (see the module doc for its columns); ``extra`` (a sweep
    member's ``step``) follows the run's label."""
    prov = run.provenance
    model: Mapping[str, Any] = prov["model"] if isinstance(prov.get("model"), Mapping) else {}
    data: Mapping[str, Any] = prov["data"] if isinstance(prov.get("data"), Mapping) else {}
    row = {
        "run": label, **(extra or {}), "command": run.command, "model": run.model_name,
        "revision": run.options.get("revision") or model.get("revision"),
        "dtype": prov.get("dtype"), "data": data.get("path"), "data_fingerprint": run.fingerprint,
        "selection": prov.get("selection"), "n": run.n_samples, "n_errors": run.n_errors,
        "modality": "+".join(prov["modality"]) if prov.get("modality") else None,
    }
    row.update(_diff_erank_columns(run) if run.command == "diff-erank" else _score_columns(run))
    return row


def compare_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A comparison (``compare.json``) as one row per compared run: its paired (or unpaired)
    difference from the baseline, metric by metric, with interval and p-value."""
    rows = []
    for d in doc.get("differences") or []:
        row = {key: d.get(key) for key in ("label", "against", "mode", "n_shared", "same_data")}
        row["run"] = row.pop("label")
        for key in METRICS:
            _with_difference(row, f"diff_{key}", (d.get("metrics") or {}).get(key))
        rows.append(row)
    return rows


def finish_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with the same columns in the same order, less the columns empty in every row."""
    columns = list(dict.fromkeys(k for row in rows for k, v in row.items() if v is not None))
    return [{key: row.get(key) for key in columns} for row in rows]


def export_rows(runs: Mapping[str, Run],
                extra: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per run (label -> run; ``extra``: label -> more columns), every row with the
    same columns in the same order (:func:`finish_rows`)."""
    extra = extra or {}
    return finish_rows([export_row(label, run, extra.get(label)) for label, run in runs.items()])


def _member_runs(run_dirs: Sequence[Path], labels: Sequence[str] | None) -> tuple[dict[str, Run], dict[str, Any]]:
    """The runs by label, a sweep's folder replaced by its members, and each member's
    ``step`` column (label -> columns)."""
    dirs: list[Path] = []
    columns: list[dict[str, Any]] = []
    for path in run_dirs:
        if series_kind(path) == "sweep":
            for member in read_series(path, "sweep")["members"]:
                dirs.append(path / member["run"])
                columns.append({"step": member.get("step")})
        else:
            dirs.append(path)
            columns.append({})
    loaded = [load_run(d, with_controls=False) for d in dirs]
    names = run_labels(loaded, labels)
    return dict(zip(names, loaded)), dict(zip(names, columns))


def folder_rows(folders: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``export``: runs (``labels`` name them), a sweep's members and the
    compared runs of a compare folder (:func:`compare_rows`), columns aligned."""
    paths = [Path(f) for f in folders]
    comparisons = [p for p in paths if (p / COMPARISON).is_file() and not is_finished(p)]
    rows: list[dict[str, Any]] = []
    for folder in comparisons:
        rows += compare_rows(json.loads((folder / COMPARISON).read_text(encoding="utf-8")))
    if runs := [p for p in paths if p not in comparisons]:
        rows += export_rows(*_member_runs(runs, labels))
    return finish_rows(rows)


def run_table(run_dir: str | Path) -> str:
    """The Markdown row of one finished run directory, as ``score`` and ``diff-erank`` print it."""
    return to_markdown(export_rows({Path(run_dir).name: load_run(run_dir, with_controls=False)}))
