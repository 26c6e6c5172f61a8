"""The reader of a finished run directory: :func:`load_run` gives a :class:`Run`.

Only ``summary.json`` is required (read through :mod:`mm_align.rundir.schema`); unknown fields
are kept, and problems that do not stop a report are collected in ``Run.problems``. Every
record of ``results.jsonl`` and ``errors.jsonl`` is checked (:mod:`mm_align.rundir.records`): one
that is not what the pipeline writes is left out, named with its line in ``Run.problems``, and
the counts of a run (:attr:`Run.n_samples`, :attr:`Run.n_errors`) are those of the records
kept, so a page's counts agree with its tables; a summary that counted otherwise is a problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_align.rundir.kind import run_kind
from mm_align.rundir.layout import (
    CONFIG,
    CONTROLS,
    ERRORS,
    RESULTS,
    SUMMARY,
    RunDirError,
    numbered_jsonl,
    read_json,
)
from mm_align.rundir.records import check_records
from mm_align.rundir.schema import read_summary
from mm_align.stages import LLM_STAGES, METRICS, STAGES

__all__ = ["Run", "load_run"]


def _finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None (JSON null, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


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
        counted: which of ``results`` / ``errors`` were read from a file (their counts are
            then the run's), else the summary's counts stand.
    """

    path: Path
    summary: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    controls: dict[str, Run] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    counted: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def command(self) -> str:
        """The command that wrote the run (:func:`mm_align.rundir.kind.run_kind`)."""
        return run_kind(self.path, self.config or {}, self.summary)

    @property
    def provenance(self) -> dict[str, Any]:
        prov = self.summary.get("provenance")
        return prov if isinstance(prov, dict) else {}

    @property
    def options(self) -> dict[str, Any]:
        """The run's settings as ``config.json`` records them (its ``config`` object), or {}."""
        options = (self.config or {}).get("config")
        return options if isinstance(options, dict) else {}

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
        """Samples scored: the valid records of ``results.jsonl``, else the summary's count."""
        n = self.summary.get("n_samples")
        return int(n) if isinstance(n, int) and RESULTS not in self.counted else len(self.results)

    @property
    def n_errors(self) -> int:
        """Samples failed: the valid records of ``errors.jsonl``, else the summary's count."""
        n = self.summary.get("n_errors")
        return int(n) if isinstance(n, int) and ERRORS not in self.counted else len(self.errors)

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

    def extra_metrics(self) -> dict[str, Any]:
        """``summary["metrics"]``: the alignment metrics of ``--metrics`` (rankme, cka,
        knn, mir) as the pipeline wrote them; empty when the run computed none."""
        raw = self.summary.get("metrics")
        return raw if isinstance(raw, dict) else {}

    def erank_mean(self) -> dict[str, float]:
        """Stage -> mean of per-sample eRanks (Algorithm (b)), where recorded."""
        raw = self.summary.get("erank_mean")
        if not isinstance(raw, Mapping):
            return {}
        return {s: v for s in STAGES if (v := _finite(raw.get(s))) is not None}

    def ci(self) -> dict[str, tuple[float, float]]:
        """Metric -> 95 % interval from ``summary["ci95"]``.

        Keys are the metric keys of ``METRICS`` (the one spelling of
        :mod:`mm_align.rundir.schema`).
        """
        raw = self.summary.get("ci95")
        if not isinstance(raw, Mapping):
            return {}
        out = {}
        for key in METRICS:
            pair = raw.get(key)
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
        """Image-text alignment per layer, as the summary records it (``summary["layers"]
        ["image_text_alignment"]``); empty when not swept."""
        raw = self.summary.get("layers")
        table = _layer_table({"a": raw.get("image_text_alignment")} if isinstance(raw, Mapping) else {})
        return table.get("a", {})

    def layer_ci(self) -> dict[str, dict[int, tuple[float, float]]]:
        """``summary["layers_ci95"]``: stage (or ``image_text_alignment``) -> {layer: (low,
        high)}, the 95 % intervals of the per-layer dataset values; empty when not recorded.

        Malformed entries (not a finite pair with low <= high) are left out: a reader shows
        what it can rather than refuse a run.
        """
        raw = self.summary.get("layers_ci95")
        out: dict[str, dict[int, tuple[float, float]]] = {}
        for key in (*LLM_STAGES, "image_text_alignment"):
            per_layer = raw.get(key) if isinstance(raw, Mapping) else None
            if not isinstance(per_layer, Mapping):
                continue
            pairs = {}
            for layer, pair in per_layer.items():
                if not (isinstance(pair, Sequence) and len(pair) == 2 and str(layer).isdigit()):
                    continue
                lo, hi = _finite(pair[0]), _finite(pair[1])
                if lo is not None and hi is not None and lo <= hi:
                    pairs[int(layer)] = (lo, hi)
            if pairs:
                out[key] = dict(sorted(pairs.items()))
        return out

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
            finite = [v for v in values if v is not None]
            if finite and len(finite) == len(values):
                out[stage] = finite
        return out


def _refuse_duplicates(path: Path, results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    """Every sample has one record: a second one means two processes wrote the run (or
    records were pasted in), and its numbers would count samples twice."""
    seen: set[Any] = set()
    doubled = []
    for record in (*results, *errors):
        key = record.get("id")
        if key in seen:
            doubled.append(key)
        seen.add(key)
    if doubled:
        raise RunDirError(
            f"{path} has {len(doubled)} sample id(s) recorded more than once in "
            f"{RESULTS}/{ERRORS} (e.g. {doubled[0]!r}): the run was written twice; score it "
            "again into a new --out"
        )


def load_run(run_dir: str | Path, with_controls: bool = True) -> Run:
    """Read a run directory.

    Raises:
        RunDirError: the directory does not exist, has no readable ``summary.json``, or
            records a sample id more than once.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    if not (path / SUMMARY).is_file():
        raise RunDirError(
            f"{path} has no {SUMMARY}: it is not a finished run directory (the scoring "
            "pipeline writes it when a run completes; rerun or resume it)"
        )
    summary = dict(read_summary(path / SUMMARY))
    problems: list[str] = []
    numbered = {name: numbered_jsonl(path / name, problems) for name in (RESULTS, ERRORS)}
    _refuse_duplicates(path, *([r for _, r in numbered[name]] for name in (RESULTS, ERRORS)))
    kept = check_records(numbered, _n_selected(summary), problems)
    results, errors = kept[RESULTS], kept[ERRORS]
    counted = frozenset(name for name in (RESULTS, ERRORS) if (path / name).is_file())
    problems += _count_problems(summary, {RESULTS: len(results), ERRORS: len(errors)}, counted)
    config = None
    if (path / CONFIG).is_file():
        try:
            loaded = read_json(path / CONFIG)
            config = loaded if isinstance(loaded, dict) else None
        except json.JSONDecodeError as exc:
            problems.append(f"config.json is not valid JSON ({exc.msg}); ignored")

    controls: dict[str, Run] = {}
    if with_controls and (path / CONTROLS).is_dir():
        for sub in sorted(p for p in (path / CONTROLS).iterdir() if p.is_dir()):
            try:
                controls[sub.name] = load_run(sub, with_controls=False)
            except RunDirError as exc:
                problems.append(f"control {sub.name!r} skipped: {exc}")
    return Run(path, summary, results, errors, config, controls, problems, counted)


def _n_selected(summary: Mapping[str, Any]) -> int | None:
    """How many samples the run selected (scored + failed), when its summary says."""
    counts = [n for n in (summary.get("n_samples"), summary.get("n_errors"))
              if isinstance(n, int) and not isinstance(n, bool)]
    return sum(counts) if len(counts) == 2 else None


def _count_problems(summary: Mapping[str, Any], kept: Mapping[str, int], counted: frozenset[str]) -> list[str]:
    """A problem for each file whose valid records the summary counted otherwise."""
    out = []
    for name, key in ((RESULTS, "n_samples"), (ERRORS, "n_errors")):
        n = summary.get(key)
        if name in counted and isinstance(n, int) and n != kept[name]:
            out.append(f"{SUMMARY} counts {n} in {key!r} but {name} holds {kept[name]} valid record(s): "
                       "the counts shown are the records'; the summary's numbers are from the run as "
                       "written (score it again for numbers that match)")
    return out
