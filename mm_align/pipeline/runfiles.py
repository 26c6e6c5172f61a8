"""The files of a run directory: append-only results and errors, the run's config.

Results and errors are JSON lines appended, flushed and fsync'ed once per batch, so a killed
run loses at most the batch in flight. A line cut short by a kill is ignored when read and
cut off before the run appends again.

Data-parallel runs write one shard per process (``shards/rank-NNN/``); the main process
merges them into the run directory's own files when every process is done. A resumed run
skips every sample recorded anywhere in the directory, so resuming with another number of
processes loses nothing and scores nothing twice.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
SHARDS = "shards"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (exists without --resume, changed config)."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a missing file has none, and a last line without its
    newline (a write cut short, or one still in progress) is not a record yet."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


def _repair_tail(path: Path) -> None:
    """Cut a trailing line that a kill left without its newline, before appending."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


def _write_json(path: Path, obj: Any) -> None:
    _write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


class RunFiles:
    """One run directory, as seen by one process.

    Args:
        root: the run directory.
        shard: this process's shard name in a data-parallel run (``None``: write the run's
            own files directly).
    """

    def __init__(self, root: str | Path, shard: str | None = None) -> None:
        self.root = Path(root)
        self.own = self.root if shard is None else self.root / SHARDS / shard

    @classmethod
    def start(cls, root: str | Path, config: Mapping[str, Any], resume: bool = False) -> RunFiles:
        """The run files of a single-process run: checked, config written, ready to append."""
        files = cls(root)
        files.check(config, resume)
        files.open(config)
        return files

    def check(self, config: Mapping[str, Any], resume: bool) -> None:
        """Refuse a directory that holds a run unless resuming it with the same settings.

        Read-only, so every process of a data-parallel run can check before any writes.
        """
        path = self.root / CONFIG
        if not path.exists():
            return
        if not resume:
            raise RunDirError(
                f"{self.root} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
        if changed:
            details = "; ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
            raise RunDirError(f"cannot resume {self.root}: the run's settings changed ({details})")

    def open(self, config: Mapping[str, Any] | None) -> None:
        """Prepare this process's files; ``config`` is written by the main process only."""
        self.own.mkdir(parents=True, exist_ok=True)
        if config is not None and not (self.root / CONFIG).exists():
            _write_json(self.root / CONFIG, dict(config))
        for name in (RESULTS, ERRORS):
            _repair_tail(self.own / name)

    def _all(self, name: str) -> list[dict[str, Any]]:
        dirs = [self.root, *sorted((self.root / SHARDS).glob("rank-*"))]
        return [r for d in dirs for r in read_jsonl(d / name)]

    def done_ids(self) -> dict[str, int]:
        """Id -> index of the samples already scored or recorded as errors anywhere in the
        run: a resumed run skips them."""
        return {r["id"]: r["index"] for name in (RESULTS, ERRORS) for r in self._all(name)}

    def append(
        self, results: Iterable[Mapping[str, Any]], errors: Iterable[Mapping[str, Any]]
    ) -> None:
        """Append one batch's records and push them to disk before returning."""
        for name, records in ((RESULTS, results), (ERRORS, errors)):
            lines = _jsonl(records)
            if lines:
                with (self.own / name).open("a", encoding="utf-8") as fh:
                    fh.write(lines)
                    fh.flush()
                    os.fsync(fh.fileno())

    def merge(self) -> None:
        """Fold every shard into the run's own files (dataset order, one record per id) and
        remove the shards. Main process only, once all processes are done."""
        shards = self.root / SHARDS
        if not shards.exists():
            return
        for name in (RESULTS, ERRORS):
            unique = {r["id"]: r for r in reversed(self._all(name))}
            _write_atomic(self.root / name, _jsonl(sorted(unique.values(), key=lambda r: r["index"])))
        shutil.rmtree(shards)

    def results(self) -> list[dict[str, Any]]:
        """All results, in dataset order (so a resumed run aggregates like a fresh one)."""
        return sorted(read_jsonl(self.root / RESULTS), key=lambda r: r["index"])

    def errors(self) -> list[dict[str, Any]]:
        return sorted(read_jsonl(self.root / ERRORS), key=lambda r: r["index"])

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.root / SUMMARY
        _write_json(path, dict(summary))
        return path
