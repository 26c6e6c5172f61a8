"""Comparison of runs: how each run differs from the first (the baseline), metric by metric.

* same data (equal data fingerprints): paired bootstrap over the samples both runs scored
  completely, matched by ``id``;
* different or unknown fingerprints: refused with the reason, unless
  ``allow_different_data``; then paired on the shared ids if there are any, else an
  unpaired bootstrap (each run resampled on its own), and the result says which.

:func:`compare` returns the document written as ``compare.json``; the report package renders it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mm_align._version import __version__
from mm_align.metrics.bootstrap import Difference, paired_difference, unpaired_difference
from mm_align.pipeline.summary import difference_rows
from mm_align.rundir import Run, expand_series, load_run

__all__ = ["DataMismatchError", "compare", "format_comparison", "format_provenance_diff", "provenance_diff"]

N_BOOT = 2000
SEED = 0
# Fewer shared samples than this cannot carry a paired bootstrap.
MIN_PAIRED = 2


class DataMismatchError(ValueError):
    """The runs were not scored on the same data and the caller did not allow it."""


@dataclass(frozen=True)
class _Pairing:
    """How one run is compared with the baseline."""

    mode: str  # "paired", "unpaired" or "none" (a Diff-eRank run: nothing to pair)
    shared: list[str]
    same_data: bool
    note: str


def run_labels(runs: Sequence[Run], labels: Sequence[str] | None) -> list[str]:
    """Display names of runs: ``labels`` if given, else directory names (made unique)."""
    if labels is not None:
        if len(labels) != len(runs):
            raise ValueError(f"got {len(labels)} labels for {len(runs)} runs")
        chosen = [str(label) for label in labels]
    else:
        chosen = [run.name for run in runs]
        # same directory name in different places (run/a vs other/a): use parent/name
        if len(set(chosen)) < len(chosen):
            chosen = [f"{run.path.parent.name}/{run.name}" for run in runs]
    if len(set(chosen)) < len(chosen):
        raise ValueError(f"run labels must be unique, got {chosen}; pass labels")
    return chosen


def _pairing(
    base: Run, base_label: str, other: Run, label: str, allow_different_data: bool
) -> _Pairing:
    # Only samples complete in both runs pair up: one incomplete record must not drop a stage.
    other_ids = set(other.complete_ids())
    shared = [i for i in base.complete_ids() if i in other_ids]
    same_data = base.fingerprint is not None and base.fingerprint == other.fingerprint
    if not same_data:
        if base.fingerprint is None or other.fingerprint is None:
            missing = [
                lab for lab, run in ((base_label, base), (label, other)) if run.fingerprint is None
            ]
            why = f"no data fingerprint recorded in {', '.join(repr(m) for m in missing)}"
        else:
            why = (
                f"different data fingerprints: {base_label!r} has {base.fingerprint}, "
                f"{label!r} has {other.fingerprint}"
            )
        overlap = f"they share {len(shared)} of {len(base.ids())} / {len(other_ids)} sample ids"
        if not allow_different_data:
            raise DataMismatchError(
                f"cannot confirm that {label!r} was scored on the same data as the baseline "
                f"{base_label!r}: {why}; {overlap}. Pass --allow-different-data "
                "(allow_different_data=True) to compare anyway."
            )
        if len(shared) >= MIN_PAIRED:
            return _Pairing(
                "paired",
                shared,
                False,
                f"Data differ ({why}); paired bootstrap on the "
                f"{len(shared)} sample ids both runs share.",
            )
        return _Pairing(
            "unpaired",
            [],
            False,
            f"Data differ ({why}) and {overlap}: unpaired bootstrap, "
            "each run resampled independently (wider intervals).",
        )
    if len(shared) < MIN_PAIRED:
        return _Pairing(
            "unpaired",
            [],
            True,
            f"Same data fingerprint but only {len(shared)} shared "
            "sample ids in results: unpaired bootstrap.",
        )
    dropped = len(base.ids()) + len(other.ids()) - 2 * len(shared)
    extra = (
        f" ({dropped} result(s) not scored completely in both runs left out, so the values "
        "compared can differ from each run's own summary)"
        if dropped
        else ""
    )
    return _Pairing(
        "paired", shared, True, f"Same data; paired bootstrap on {len(shared)} samples{extra}."
    )


def _difference(base: Run, other: Run, pairing: _Pairing) -> dict[str, Difference]:
    if pairing.mode == "none":
        return {}
    if pairing.mode == "paired":
        return paired_difference(
            base.entropies(pairing.shared),
            other.entropies(pairing.shared),
            n_boot=N_BOOT,
            seed=SEED,
        )
    if not base.results or not other.results:
        return {}
    return unpaired_difference(
        base.entropies(base.complete_ids()),
        other.entropies(other.complete_ids()),
        n_boot=N_BOOT,
        seed=SEED,
    )


def _run_entry(label: str, run: Run) -> dict[str, Any]:
    return {
        "label": label,
        "run_dir": str(run.path.resolve()),
        "n_samples": run.n_samples,
        "n_errors": run.n_errors,
        "fingerprint": run.fingerprint,
        "model": run.model_name,
        "model_note": run.model_note,
        "metrics": run.metrics(),
        "ci95": {k: list(v) for k, v in run.ci().items()},
        "erank_mean": run.erank_mean(),
        "layers": {s: {str(k): v for k, v in per.items()} for s, per in run.layers().items()},
        "problems": list(run.problems),
    }


# Run plumbing, not what produced the numbers: left out of the provenance diff.
_PLUMBING = {"option.out", "option.resume", "option.progress", "option.model", "option.data"}


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def provenance_diff(runs: Mapping[str, Run]) -> dict[str, Any]:
    """What differs between runs and what they share: every field of their provenance
    (model, revision, dtype, prompt, data fingerprint, versions, ...) and, as ``option.*``,
    of the options in their ``config.json``.

    Returns:
        ``{"differs": {field: {label: value}}, "equal": {field: value}}``, fields in the
        order first met; a field a run lacks counts as None.
    """
    flat = {label: {**_flat(run.provenance), **_flat(run.options, "option.")} for label, run in runs.items()}
    fields = [f for f in dict.fromkeys(k for values in flat.values() for k in values) if f not in _PLUMBING]
    differs, equal = {}, {}
    for name in fields:
        values = {label: values.get(name) for label, values in flat.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            differs[name] = values
        else:
            equal[name] = next(iter(values.values()))
    return {"differs": differs, "equal": equal}


def compare(
    run_dirs: Sequence[str | Path],
    allow_different_data: bool = False,
    labels: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Run]]:
    """The comparison document of runs (the first is the baseline) and the runs by label;
    a sweep's directory stands for its members.

    Raises:
        DataMismatchError: a run's data cannot be confirmed equal to the baseline's and
            ``allow_different_data`` is false; the message says why.
        RunDirError: a directory is not a finished run.
    """
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    loaded = [load_run(d, with_controls=False) for d in expand_series(run_dirs)]
    names = run_labels(loaded, labels)
    runs = dict(zip(names, loaded))
    baseline, base = names[0], loaded[0]
    differences = []
    for label, run in list(runs.items())[1:]:
        pairing = _pairing(base, baseline, run, label, allow_different_data)
        if "diff-erank" in (base.command, run.command):  # no per-stage entropies to pair
            pairing = replace(pairing, mode="none", shared=[], note="Diff-eRank run: compare the "
                              "Diff-eRank values and intervals of the runs' table; no per-stage difference.")
        differences.append(
            {
                "label": label,
                "against": baseline,
                "mode": pairing.mode,
                "n_shared": len(pairing.shared),
                "same_data": pairing.same_data,
                "note": pairing.note,
                "metrics": _difference(base, run, pairing),
            }
        )
    doc = {
        "mm_align_version": __version__,
        "baseline": baseline,
        "n_boot": N_BOOT,
        "seed": SEED,
        "level": 0.95,
        "runs": [_run_entry(label, run) for label, run in runs.items()],
        "provenance": provenance_diff(runs),
        "differences": differences,
    }
    return doc, runs


def format_provenance_diff(diff: Mapping[str, Any]) -> str:
    """The provenance diff for the terminal: each differing field with every run's value,
    then the fields all runs share."""
    lines = ["differs between the runs:" if diff["differs"] else "no provenance field differs"]
    for name, values in diff["differs"].items():
        lines.append(f"  {name}: " + "   ".join(f"{label}={value}" for label, value in values.items()))
    if diff["equal"]:
        shared = ", ".join(f"{name}={value}" for name, value in diff["equal"].items())
        lines.append(textwrap.fill(shared, 100, initial_indent="equal in every run: ",
                                   subsequent_indent="  ", break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines)


def format_comparison(doc: Mapping[str, Any], provenance: bool = True) -> str:
    """The comparison for the terminal: the provenance diff (unless ``provenance`` is
    False), then each run's paired (or unpaired) difference to the baseline with its
    interval and p-value."""
    parts = [format_provenance_diff(doc["provenance"])] if provenance else []
    problems = [f"  {entry['label']}: {p}" for entry in doc["runs"] for p in entry.get("problems", ())]
    if problems:
        parts.append("\n".join(["problems in the runs' files:", *problems]))
    for d in doc["differences"]:
        title = f"{d['label']} − {d['against']} ({d['mode']}, {d['n_shared']} shared samples): {d['note']}"
        parts.append("\n".join(difference_rows(title, d["metrics"])))
    return "\n\n".join(parts)
