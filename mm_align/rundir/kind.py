"""What kind of run a directory holds: the command that wrote it, read in one place.

``config.json["command"]`` is the kind. The reader (:attr:`Run.command
<mm_align.rundir.reader.Run.command>`), the report's page choice
(:func:`mm_align.report.pages.write_report`) and the series code
(:func:`~mm_align.rundir.series.series_kind`) all ask :func:`run_kind`.

A directory whose ``config.json`` names no command (a sweep folder written before 0.1.0's
run-folder schema, or a folder put together by hand) is recognised from its files, as
earlier releases did, in :func:`_inferred` and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mm_align.rundir.layout import CONFIG, SUMMARY, RunDirError, read_json

__all__ = ["COMMANDS", "SERIES", "run_kind"]

SERIES = {"scaling": "scaling.json", "sweep": "sweep.json"}
"""A series' command -> the document its directory holds once the series is finished."""

COMMANDS = ("score", "diff-erank", "info-gain", "attribution", "scaling-member", *SERIES)
"""Every kind of run directory: the sub-command that writes it (``scaling-member``: one
model's run inside a scaling series)."""

_ANALYSES = {"info_gain": "info-gain", "attribution": "attribution"}


def _read(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError):
        return None


def _inferred(root: Path, summary: Any) -> str:
    """The kind of a directory without a recorded command, from its files."""
    for kind, name in SERIES.items():
        if (root / name).is_file():
            return kind
    summary = summary if isinstance(summary, Mapping) else {}
    if summary.get("analysis") in _ANALYSES:
        return _ANALYSES[summary["analysis"]]
    diff = summary.get("diff_erank")
    return "diff-erank" if isinstance(diff, Mapping) and "paper" in diff else "score"


def run_kind(root: str | Path, config: Mapping[str, Any] | None = None,
             summary: Mapping[str, Any] | None = None) -> str:
    """The command that wrote the run directory ``root`` (one of :data:`COMMANDS`).

    Args:
        root: the directory.
        config, summary: its ``config.json`` / ``summary.json`` when already read (else read
            here, only as far as needed).

    Raises:
        RunDirError: ``config.json`` names a command this mm-align does not know.
    """
    root = Path(root)
    config = _read(root / CONFIG) if config is None else config
    command = config.get("command") if isinstance(config, Mapping) else None
    if command is None:
        return _inferred(root, _read(root / SUMMARY) if summary is None else summary)
    if command not in COMMANDS:
        raise RunDirError(f"{root / CONFIG}: unknown command {command!r}; this mm-align writes "
                          f"{', '.join(COMMANDS)}")
    return str(command)
