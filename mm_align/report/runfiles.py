"""Read a run directory (docs/ARCHITECTURE.md, "Run directory") into a :class:`Run`.

Only ``summary.json`` is required. Everything else (results, errors, config, controls) is
optional, and unknown fields are kept as they are, so a report can be drawn from a partial
or interrupted run and from runs written by newer versions. Problems that do not stop the
report (an unreadable line, a control without a summary) are collected in
``Run.problems`` for the page to show instead of being swallowed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_align.metrics.aggregate import image_text_alignment
from mm_align.metrics.bootstrap import METRICS
from mm_align.stages import LLM_STAGES, STAGES

__all__ = ["LLM_STAGES", "Run", "RunDirError", "load_run"]



class RunDirError(FileNotFoundError):
    """The directory is not a readable run directory of ``mm-align score``."""


def _finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None (JSON null, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Objects of a JSON-lines file; a missing file is empty, bad lines are reported."""
    if not path.is_file():
        return []
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                # a run killed mid-write leaves a truncated last line: report, keep the rest
                problems.append(f"{path.name} line {number}: not valid JSON ({exc.msg}); skipped")
                continue
            if not isinstance(record, dict):
                problems.append(f"{path.name} line {number}: not a JSON object; skipped")
                continue
            records.append(record)
    return records


def _layer_table(raw: Any) -> dict[str, dict[int, float]]:
    """``{stage: {layer: value}}`` with integer layers in order (JSON keys are strings)."""
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, dict[int, float]] = {}
    for stage, per_layer in raw.items():
        if not isinstance(per_layer, Mapping):
            continue
        values = {}
        for layer, value in per_layer.items():
            try:
                key = int(layer)
            except (TypeError, ValueError):
                continue
            if (v := _finite(value)) is not None:
                values[key] = v
        if values:
            out[str(stage)] = dict(sorted(values.items()))
    return out


@dataclass(frozen=True)
class Run:
    """One run directory as read from disk.

    Attributes:
        path: the run directory.
        summary: ``summary.json`` as written (extra fields kept).
        results: the objects of ``results.jsonl`` in file order (empty if absent).
        errors: the objects of ``errors.jsonl`` (empty if absent).
        config: ``config.json`` or None.
        controls: control name -> its run (``controls/<name>/``), in name order.
        problems: non-fatal reading problems, for the reader of the report.
    """

    path: Path
    summary: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    controls: dict[str, Run] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def provenance(self) -> dict[str, Any]:
        prov = self.summary.get("provenance")
        return prov if isinstance(prov, dict) else {}

    @property
    def model_name(self) -> str | None:
        model = self.provenance.get("model")
        if isinstance(model, Mapping):
            name = model.get("name_or_path") or model.get("id") or model.get("name")
            return str(name) if name else None
        return str(model) if model else None

    @property
    def model_note(self) -> str | None:
        """A warning about the model (e.g. random-weight tiny checkpoint: values are
        meaningless), from ``provenance["model_note"]`` or ``provenance["model"]["note"]``."""
        model = self.provenance.get("model")
        note = self.provenance.get("model_note") or (
            model.get("note") if isinstance(model, Mapping) else None
        )
        return str(note) if note else None

    @property
    def fingerprint(self) -> str | None:
        """The data fingerprint, ``provenance["data"]["fingerprint"]``, if recorded."""
        data = self.provenance.get("data")
        fp = data.get("fingerprint") if isinstance(data, Mapping) else None
        return str(fp) if fp else None

    @property
    def n_samples(self) -> int:
        n = self.summary.get("n_samples")
        return int(n) if isinstance(n, int) else len(self.results)

    @property
    def n_errors(self) -> int:
        n = self.summary.get("n_errors")
        return int(n) if isinstance(n, int) else len(self.errors)

    def metrics(self) -> dict[str, float]:
        """Dataset-level metrics from the summary, keyed like ``bootstrap.METRICS``."""
        eranks = self.summary.get("erank")
        eranks = eranks if isinstance(eranks, Mapping) else {}
        out = {}
        for key in METRICS:
            raw = (
                eranks.get(key.removeprefix("erank_"))
                if key.startswith("erank_")
                else self.summary.get(key)
            )
            if (v := _finite(raw)) is not None:
                out[key] = v
        return out

    def erank_mean(self) -> dict[str, float]:
        """Stage -> mean of per-sample eRanks (Algorithm (b)), where recorded."""
        raw = self.summary.get("erank_mean")
        if not isinstance(raw, Mapping):
            return {}
        return {s: v for s in STAGES if (v := _finite(raw.get(s))) is not None}

    def ci(self) -> dict[str, tuple[float, float]]:
        """Metric -> 95 % interval from ``summary["ci95"]``.

        Accepts the metric keys of ``METRICS`` and, for eRanks, bare stage names, so that
        either spelling of the writer is read.
        """
        raw = self.summary.get("ci95")
        if not isinstance(raw, Mapping):
            return {}
        out = {}
        for key in METRICS:
            pair = raw.get(key, raw.get(key.removeprefix("erank_")))
            if isinstance(pair, Sequence) and len(pair) == 2:
                lo, hi = _finite(pair[0]), _finite(pair[1])
                if lo is not None and hi is not None:
                    out[key] = (lo, hi)
        return out

    def layers(self) -> dict[str, dict[int, float]]:
        """``summary["layers"]``: LLM stage -> {layer: dataset eRank}; empty when not swept.

        Other keys of ``summary["layers"]`` (the pipeline also stores the per-layer
        alignment there) are not eRanks and are left out.
        """
        table = _layer_table(self.summary.get("layers"))
        return {s: table[s] for s in LLM_STAGES if s in table}

    def layer_alignment(self) -> dict[int, float]:
        """Image-text alignment per layer, from the dataset eRanks of the three LLM stages."""
        return alignment_by_layer(self.layers())

    def sample_values(self, key: str) -> list[float]:
        """Finite values of a per-sample field of the results, e.g. ``image_text_alignment``."""
        return [v for r in self.results if (v := _finite(r.get(key))) is not None]

    def ids(self) -> list[str]:
        """Sample ids of the results, in file order."""
        return [str(r["id"]) for r in self.results if "id" in r]

    def complete_ids(self) -> list[str]:
        """Ids of the results with a finite entropy for every stage, in run order."""
        return [
            str(r.get("id"))
            for r in self.results
            if all(_finite(r.get(f"entropy_{stage}")) is not None for stage in STAGES)
        ]

    def entropies(self, ids: Iterable[str] | None = None) -> dict[str, list[float]]:
        """Stage -> per-sample entropies of ``ids`` (default: all results), aligned by position.

        A stage is included only if every selected sample has a finite entropy for it, so the
        arrays stay aligned for a paired comparison.
        """
        by_id = {str(r.get("id")): r for r in self.results}
        records = self.results if ids is None else [by_id[i] for i in ids]
        out = {}
        for stage in STAGES:
            values = [_finite(r.get(f"entropy_{stage}")) for r in records]
            if values and all(v is not None for v in values):
                out[stage] = values
        return out


def alignment_by_layer(layers: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    """Per-layer image-text alignment where all three LLM stages have that layer."""
    if not all(s in layers for s in LLM_STAGES):
        return {}
    common = set.intersection(*(set(layers[s]) for s in LLM_STAGES))
    return {
        layer: image_text_alignment(*(layers[s][layer] for s in LLM_STAGES))
        for layer in sorted(common)
    }


def load_run(run_dir: str | Path, with_controls: bool = True) -> Run:
    """Read a run directory.

    Raises:
        RunDirError: the directory does not exist, or has no readable ``summary.json``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise RunDirError(
            f"{path} has no summary.json: it is not a finished run directory (the scoring "
            "pipeline writes summary.json when a run completes; rerun or resume it)"
        )
    try:
        summary = _read_json(summary_path)
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{summary_path} is not valid JSON: {exc}") from exc
    if not isinstance(summary, dict):
        raise RunDirError(f"{summary_path} must hold a JSON object, got {type(summary).__name__}")
    if isinstance(summary.get("diff_erank"), dict) and "paper" in summary["diff_erank"]:
        raise RunDirError(
            f"{path} is a `mm-align diff-erank` run (text LLM); reports and comparisons cover "
            "`mm-align score` runs. Its numbers are in summary.json and results.jsonl."
        )

    problems: list[str] = []
    results = _read_jsonl(path / "results.jsonl", problems)
    errors = _read_jsonl(path / "errors.jsonl", problems)
    config = None
    if (path / "config.json").is_file():
        try:
            loaded = _read_json(path / "config.json")
            config = loaded if isinstance(loaded, dict) else None
        except json.JSONDecodeError as exc:
            problems.append(f"config.json is not valid JSON ({exc.msg}); ignored")

    controls: dict[str, Run] = {}
    if with_controls and (path / "controls").is_dir():
        for sub in sorted(p for p in (path / "controls").iterdir() if p.is_dir()):
            try:
                controls[sub.name] = load_run(sub, with_controls=False)
            except RunDirError as exc:
                problems.append(f"control {sub.name!r} skipped: {exc}")
    return Run(path, summary, results, errors, config, controls, problems)
