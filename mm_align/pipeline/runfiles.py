"""The files of a run directory: append-only results and errors, the run's config.

Results and errors are JSON lines appended and flushed (and fsync'ed) once per batch, so a
killed run loses at most the batch in flight. A line cut short by a kill is detected and cut
off when the run is resumed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (exists without --resume, changed config)."""


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file written by :class:`RunFiles`; missing file = none."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _repair_tail(path: Path) -> None:
    """Cut a trailing line that a kill left without its newline (it was never complete)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


class RunFiles:
    """One run directory, opened for a new run or to resume one.

    Args:
        root: the run directory (created if needed).
        config: the run's identity (model, data fingerprint, prompt, layers, ...): written to
            config.json; on resume it must equal the saved one.
        resume: continue a run in a non-empty directory.
    """

    def __init__(self, root: str | Path, config: Mapping[str, Any], resume: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        config_path = self.root / CONFIG
        if config_path.exists():
            if not resume:
                raise RunDirError(
                    f"{self.root} already holds a run; pass --resume to continue it or choose "
                    "another --out"
                )
            saved = json.loads(config_path.read_text(encoding="utf-8"))
            changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
            if changed:
                details = "; ".join(
                    f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed
                )
                raise RunDirError(
                    f"cannot resume {self.root}: the run's settings changed ({details})"
                )
        else:
            _write_json(config_path, dict(config))
        for name in (RESULTS, ERRORS):
            _repair_tail(self.root / name)

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS

    @property
    def errors_path(self) -> Path:
        return self.root / ERRORS

    def done_ids(self) -> set[str]:
        """Ids already scored or recorded as errors: a resumed run skips them."""
        return {r["id"] for p in (self.results_path, self.errors_path) for r in read_jsonl(p)}

    def append(self, results: Iterable[Mapping[str, Any]], errors: Iterable[Mapping[str, Any]]) -> None:
        """Append one batch's records and push them to disk before returning."""
        for path, records in ((self.results_path, results), (self.errors_path, errors)):
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
            if lines:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(lines)
                    fh.flush()
                    os.fsync(fh.fileno())

    def results(self) -> list[dict[str, Any]]:
        """All results, in dataset order (so a resumed run aggregates like a fresh one)."""
        return sorted(read_jsonl(self.results_path), key=lambda r: r["index"])

    def errors(self) -> list[dict[str, Any]]:
        return sorted(read_jsonl(self.errors_path), key=lambda r: r["index"])

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.root / SUMMARY
        _write_json(path, dict(summary))
        return path
