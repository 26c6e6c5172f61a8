"""The writers of a run's records: :class:`RunFiles` (a run directory, or one process's
shard of it) and :class:`MemoryRun` (the same interface without files, for notebooks).

They append results and errors, flushed and fsync'ed once per batch, so a killed run loses at
most the batch in flight; a line cut short by a kill is ignored when read and cut off before
the run appends again. Data-parallel runs write one shard per process; the main process merges
them when every process is done. Who may write is decided before, by
:func:`mm_align.rundir.owner.owned` and :meth:`RunFiles.check`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_align.rundir.layout import (
    ERRORS,
    RESULTS,
    SHARDS,
    STATES,
    SUMMARY,
    RunDirError,
    States,
    read_jsonl,
    repair_tail,
    state_name,
    to_jsonl,
    write_atomic,
    write_states,
    writing,
)
from mm_align.rundir.owner import check, claim
from mm_align.rundir.schema import read_summary, stamp, write_summary

if TYPE_CHECKING:  # torch is loaded only where states are read or written
    import torch

__all__ = ["MemoryRun", "RunFiles"]


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

    def check(self, command: str, identity: Mapping[str, Any], resume: bool,
              overwrite: bool = False) -> None:
        """Refuse the directory unless it is new or a ``command`` run that ``resume``
        continues with the same ``identity`` (:func:`mm_align.rundir.owner.check`)."""
        check(self.root, command, identity, resume, overwrite)

    def open(self, record: Mapping[str, Any] | None) -> None:
        """Prepare this process's files; ``record`` (``command``, ``config``, ``identity``:
        :func:`mm_align.rundir.owner.claim`) is written by the main process only.

        ``results.jsonl`` and ``errors.jsonl`` exist from here on, empty or not."""
        self.own.mkdir(parents=True, exist_ok=True)
        if record is not None:
            claim(self.root, record)
        for name in (RESULTS, ERRORS):
            repair_tail(self.own / name)
            (self.own / name).touch()

    def _all(self, name: str) -> list[dict[str, Any]]:
        dirs = [self.root, *sorted((self.root / SHARDS).glob("rank-*"))]
        return [r for d in dirs for r in read_jsonl(d / name)]

    def done_ids(self) -> dict[str, int]:
        """Id -> index of the samples already scored or recorded as errors anywhere in the
        run: a resumed run skips them."""
        return {r["id"]: r["index"] for name in (RESULTS, ERRORS) for r in self._all(name)}

    def append(
        self, results: Iterable[Mapping[str, Any]], errors: Iterable[Mapping[str, Any]],
        states: States | None = None,
    ) -> None:
        """Append one batch's records and push them to disk before returning.

        ``states`` (sample index -> tensors) go to ``states/INDEX.safetensors`` first: a
        kill between the two leaves states without a record (the sample is scored again on
        resume and its file replaced), never a record without its states."""
        for index, tensors in (states or {}).items():
            write_states(self.root / STATES, index, tensors)
        for name, records in ((RESULTS, results), (ERRORS, errors)):
            lines = to_jsonl(records)
            if lines:
                with writing(self.own / name), (self.own / name).open("a", encoding="utf-8") as fh:
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
            write_atomic(self.root / name, to_jsonl(sorted(unique.values(), key=lambda r: r["index"])))
        shutil.rmtree(shards)

    def results(self) -> list[dict[str, Any]]:
        """All results, in dataset order (so a resumed run aggregates like a fresh one)."""
        return sorted(read_jsonl(self.root / RESULTS), key=lambda r: r["index"])

    def errors(self) -> list[dict[str, Any]]:
        """All error records, in dataset order."""
        return sorted(read_jsonl(self.root / ERRORS), key=lambda r: r["index"])

    def state_keys(self, index: int) -> list[str]:
        """Names of the tensors kept for sample ``index`` (empty when none were kept)."""
        from safetensors import safe_open

        path = self.root / STATES / state_name(index)
        if not path.is_file():
            return []
        with safe_open(path, framework="pt") as f:
            return sorted(f.keys())

    def read_states(self, index: int, keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The tensors kept for sample ``index`` (only ``keys`` when given, read lazily so
        one layer of many costs one layer's memory), on the CPU, as written.

        Raises:
            RunDirError: no states for that sample, or a key it does not hold.
        """
        from safetensors import safe_open

        path = self.root / STATES / state_name(index)
        if not path.is_file():
            raise RunDirError(f"{path}: no states kept for sample {index} (was the run scored without --metrics?)")
        with safe_open(path, framework="pt") as f:
            missing = sorted(set(keys or ()) - set(f.keys()))
            if missing:
                raise RunDirError(f"{path} lacks {', '.join(missing)}")
            return {k: f.get_tensor(k) for k in (f.keys() if keys is None else keys)}

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (written by :meth:`write_summary` when the run completed), a
        :class:`~mm_align.rundir.schema.Summary` as a plain dict."""
        return dict(read_summary(self.root / SUMMARY))

    def write_summary(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``summary.json`` (:func:`mm_align.rundir.schema.write_summary`) and return
        it as written."""
        return dict(write_summary(self.root / SUMMARY, summary))


class MemoryRun:
    """A run kept in memory (``out=None``): the writer interface of :class:`RunFiles`
    without files, for notebooks."""

    def __init__(self) -> None:
        self._results: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._states: dict[int, dict[str, torch.Tensor]] = {}
        self.summary: dict[str, Any] = {}

    def check(self, command: str, identity: Mapping[str, Any], resume: bool,
              overwrite: bool = False) -> None:
        """Nothing to check: a memory run always starts empty."""

    def open(self, record: Mapping[str, Any] | None) -> None:
        """Nothing to prepare."""

    def done_ids(self) -> dict[str, int]:
        return {r["id"]: r["index"] for r in (*self._results, *self._errors)}

    def append(
        self, results: Iterable[Mapping[str, Any]], errors: Iterable[Mapping[str, Any]],
        states: States | None = None,
    ) -> None:
        self._states.update({i: {k: v.detach().cpu() for k, v in t.items()} for i, t in (states or {}).items()})
        self._results.extend(dict(r) for r in results)
        self._errors.extend(dict(e) for e in errors)

    def state_keys(self, index: int) -> list[str]:
        return sorted(self._states.get(index, {}))

    def read_states(self, index: int, keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        kept = self._states.get(index)
        if kept is None:
            raise RunDirError(f"no states kept for sample {index}")
        missing = sorted(set(keys or ()) - set(kept))
        if missing:
            raise RunDirError(f"sample {index}: no states {', '.join(missing)}")
        return {k: kept[k] for k in (kept if keys is None else keys)}

    def merge(self) -> None:
        """Nothing to merge: one process."""

    def results(self) -> list[dict[str, Any]]:
        return sorted(self._results, key=lambda r: r["index"])

    def errors(self) -> list[dict[str, Any]]:
        return sorted(self._errors, key=lambda r: r["index"])

    def write_summary(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        self.summary = dict(stamp(summary))
        return self.summary
