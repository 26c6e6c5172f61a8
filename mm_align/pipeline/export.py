"""Runs as a table, one row per run, ready for a paper: ``mm-align export`` writes it as CSV,
JSON or Markdown, and ``score`` / ``compare`` print its Markdown form.

A row (:func:`export_row`) is a flat mapping, so ``pandas.read_csv`` / ``pandas.read_json``
give one column per field:

* ``run``, ``command`` (``score`` or ``diff-erank``), ``model``, ``revision`` (the one asked
  for, else the hub commit), ``dtype``, ``modality`` (what the samples gave: ``image``,
  ``images``, ``video`` or ``audio``, several joined by ``+``; empty for runs that predate it
  and for text runs), ``data`` (path or hub name), ``data_fingerprint``,
  ``selection`` (which samples), ``n`` (scored), ``n_errors``;
* ``score`` runs: each metric (``erank_vision`` ... ``image_text_alignment``, Algorithm (a))
  with ``<metric>_lo`` / ``<metric>_hi``, its 95% bootstrap interval; and for each control,
  perturbation and the untrained baseline, ``diff_<name>_<metric>`` (``name`` minus the
  real run, paired on the same samples) with ``_lo``, ``_hi`` and ``_p``;
* ``diff-erank`` runs: ``diff_erank`` (Algorithm (a), the paper's) and ``diff_erank_mean``
  (Algorithm (b)) with their intervals, ``erank_trained`` and ``erank_untrained``.

Missing values are None (an empty CSV cell, JSON null).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mm_align.rundir import Run, load_run
from mm_align.stages import METRICS

__all__ = ["FORMATS", "export_row", "export_rows", "render", "run_table", "to_markdown"]

FORMATS = ("csv", "markdown", "json")
SHORT = {
    "erank_vision": "eRank1 vision", "erank_projector": "eRank2 projector",
    "erank_image": "eRank3 image", "erank_text": "eRank4 text", "erank_joint": "eRank5 joint",
    "image_reduction_ratio": "Reduction ratio", "image_text_alignment": "Alignment",
    "diff_erank": "Diff-eRank (a)", "diff_erank_mean": "Diff-eRank (b)",
    "erank_trained": "eRank M1 trained", "erank_untrained": "eRank M0 untrained",
}
RATIOS = ("image_reduction_ratio", "image_text_alignment")


def _with_interval(row: dict[str, Any], key: str, value: Any, interval: Any) -> None:
    row[key] = value
    lo, hi = interval if isinstance(interval, Sequence) and len(interval) == 2 else (None, None)
    row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi


def _differences(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Name -> {metric: Difference} of the controls and the untrained baseline of a run."""
    diffs = dict(summary.get("controls") or {})
    if isinstance(summary.get("diff_erank"), Mapping):
        diffs["untrained"] = summary["diff_erank"]
    return diffs


def _score_columns(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {}
    metrics, cis = run.metrics(), run.ci()
    for key in METRICS:
        _with_interval(row, key, metrics.get(key), cis.get(key))
    for name, diffs in _differences(run.summary).items():
        for key in METRICS:
            if isinstance(d := diffs.get(key), Mapping):
                _with_interval(row, f"diff_{name}_{key}", d["diff"], d["ci95"])
                row[f"diff_{name}_{key}_p"] = d["p_value"]
    return row


def _diff_erank_columns(run: Run) -> dict[str, Any]:
    summary, row = run.summary, dict[str, Any]()
    ci = summary.get("ci95") or {}
    _with_interval(row, "diff_erank", summary["diff_erank"]["paper"], ci.get("diff_erank"))
    _with_interval(row, "diff_erank_mean", summary["diff_erank"].get("mean"), ci.get("diff_erank_mean"))
    for model in ("trained", "untrained"):
        row[f"erank_{model}"] = (summary.get("erank") or {}).get(model)
    return row


def export_row(label: str, run: Run) -> dict[str, Any]:
    """One run as a flat row (see the module doc for its columns)."""
    prov = run.provenance
    model: Mapping[str, Any] = prov["model"] if isinstance(prov.get("model"), Mapping) else {}
    data: Mapping[str, Any] = prov["data"] if isinstance(prov.get("data"), Mapping) else {}
    row = {
        "run": label, "command": run.command, "model": run.model_name,
        "revision": run.options.get("revision") or model.get("revision"),
        "dtype": prov.get("dtype"), "data": data.get("path"), "data_fingerprint": run.fingerprint,
        "selection": prov.get("selection"), "n": run.n_samples, "n_errors": run.n_errors,
        "modality": "+".join(prov["modality"]) if prov.get("modality") else None,
    }
    row.update(_diff_erank_columns(run) if run.command == "diff-erank" else _score_columns(run))
    return row


def export_rows(runs: Mapping[str, Run]) -> list[dict[str, Any]]:
    """One row per run (label -> run), every row with the same columns in the same order."""
    rows = [export_row(label, run) for label, run in runs.items()]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in columns} for row in rows]


def _num(key: str, value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.2f}" if "erank" in key else f"{value:.4f}"


def _cell(row: Mapping[str, Any], key: str, p: bool = False) -> str:
    value = _num(key, row.get(key))
    if row.get(f"{key}_lo") is not None:
        value += f" [{_num(key, row[f'{key}_lo'])}, {_num(key, row[f'{key}_hi'])}]"
    if p and row.get(f"{key}_p") is not None:
        value += " (p<0.001)" if row[f"{key}_p"] < 0.001 else f" (p={row[f'{key}_p']:.3f})"
    return value


def _markdown_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, bool]]:
    """(header, key, with p-value) of the columns a paper table shows: the metrics, and of
    the differences only the two ratios."""
    present = [key for key in rows[0] if any(row[key] is not None for row in rows)]
    columns = [(SHORT[key], key, False) for key in present if key in SHORT]
    for key in present:
        for ratio in RATIOS:
            if key.startswith("diff_") and key.endswith(f"_{ratio}"):  # diff_<name>_<ratio>
                name = key[len("diff_"):-len(ratio) - 1]
                columns.append((f"Δ {SHORT[ratio]} {name}", key, True))
    return columns


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of :func:`export_rows`: run, model, revision, data, n, then each
    value with its 95% interval ``[lo, hi]`` and each control's ratio difference with p."""
    if not rows:
        return ""
    head = ["run", "model", "revision", "data", "n"]
    columns = _markdown_columns(rows)
    lines = ["| " + " | ".join([*head, *(c[0] for c in columns)]) + " |",
             "|" + "---|" * len(head) + "---:|" * len(columns)]
    for row in rows:
        data = Path(str(row["data"])).name if row["data"] else "–"
        cells = [str(row["run"]), str(row["model"] or "–"), str(row["revision"] or "–"), data, str(row["n"])]
        cells += [_cell(row, key, p) for _, key, p in columns]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def render(rows: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """The rows as ``csv``, ``markdown`` or ``json`` (a list of flat objects) text."""
    if fmt == "markdown":
        return to_markdown(rows) + "\n"
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_table(run_dir: str | Path) -> str:
    """The Markdown row of one finished run directory, as ``score`` and ``diff-erank`` print it."""
    return to_markdown(export_rows({Path(run_dir).name: load_run(run_dir, with_controls=False)}))
