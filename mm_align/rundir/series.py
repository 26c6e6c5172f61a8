"""A series of runs (``mm-align scaling``, ``mm-align sweep``): a folder that holds one run
directory per model under ``members/`` and, once finished, the series' document
(``scaling.json`` or ``sweep.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mm_align.rundir.kind import SERIES, run_kind
from mm_align.rundir.layout import SUMMARY, RunDirError, read_json, write_json

__all__ = ["MEMBERS", "expand_series", "is_finished", "member_dir", "read_series", "series_kind",
           "write_series"]


MEMBERS = "members"


def member_dir(root: str | Path, name: str) -> Path:
    """``ROOT/members/NAME``: the run directory of one model of a series."""
    return Path(root) / MEMBERS / name


def is_finished(run_dir: str | Path) -> bool:
    """Whether a run directory holds its ``summary.json`` (the run completed)."""
    return (Path(run_dir) / SUMMARY).is_file()


def series_kind(root: str | Path) -> str | None:
    """``"scaling"`` or ``"sweep"`` when ``root`` holds that finished series (its kind is
    :func:`~mm_align.rundir.kind.run_kind`'s, its document written), else None."""
    kind = run_kind(root)
    return kind if kind in SERIES and (Path(root) / SERIES[kind]).is_file() else None


def write_series(root: str | Path, kind: str, doc: Mapping[str, Any]) -> Path:
    """Write a series' document (``ROOT/scaling.json`` or ``sweep.json``, atomically) and
    return its path."""
    path = Path(root) / SERIES[kind]
    write_json(path, dict(doc))
    return path


def read_series(root: str | Path, kind: str) -> dict[str, Any]:
    """The document of a finished series of ``kind``.

    Raises:
        RunDirError: no such file, or not a JSON object.
    """
    path = Path(root) / SERIES[kind]
    try:
        doc = read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path}: not a finished {kind} series ({err})") from None
    if not isinstance(doc, dict):
        raise RunDirError(f"{path} must hold a JSON object")
    return doc


def expand_series(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories, with a finished sweep's directory replaced by its members' runs in
    sweep order (so ``compare`` and ``export`` take a whole sweep)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if series_kind(path) == "sweep":
            out += [path / member["run"] for member in read_series(path, "sweep")["members"]]
        else:
            out.append(path)
    return out
