"""The run directory: the one module that writes and reads a run's files.

::

    RUN_DIR/
      config.json      the run's settings (a ScoreConfig / DiffErankConfig) and identity
      results.jsonl    one JSON object per scored sample, appended per batch
      errors.jsonl     one per sample that could not be scored: id, index, stage, reason
      summary.json     dataset-level numbers, written when the run completes
      states/          with --metrics cka, knn or mir: one INDEX.safetensors per scored
                       sample, the tensors its dataset-level metrics need (written before
                       its record, so every recorded sample has them)
      controls/NAME/   a complete run directory per control, perturbation or baseline
      shards/rank-NNN/ per-process results while a data-parallel run is in progress
      report.html      written by the report package from the files above
      .mm-align.lock   the OS lock of the process that owns the run while it runs
      .mm-align.owner  who holds it: pid, host, start time (JSON), removed on release

One process at a time owns a run directory: :meth:`RunFiles.locked` holds an OS lock
(``flock`` through the ``filelock`` package) on ``.mm-align.lock`` for the whole run, and a
second start is refused at once, naming the holder. The OS drops the lock when its process
dies, even by ``kill -9``, so a crashed run never blocks its resume. A folder that holds
files but no ``config.json`` is not taken for a run (results without their config come from
an unknown run and are never taken in).

Writers (:class:`RunFiles`, or :class:`MemoryRun` for a run kept in memory) append results
and errors, flushed and fsync'ed once per batch, so a killed run loses at most the batch in
flight; a line cut short by a kill is ignored when read and cut off before the run appends
again. Data-parallel runs write one shard per process; the main process merges them when
every process is done. The reader (:func:`load_run`) gives a :class:`Run`; only
``summary.json`` is required there, unknown fields are kept, and problems that do not stop
a report are collected in ``Run.problems``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_align.stages import LLM_STAGES, METRICS, STAGES

if TYPE_CHECKING:  # torch is loaded only where states are read or written
    import torch

__all__ = [
    "CONFIG",
    "ERRORS",
    "RESULTS",
    "SUMMARY",
    "MemoryRun",
    "Run",
    "RunDirError",
    "RunFiles",
    "RunLockedError",
    "load_run",
    "read_jsonl",
]

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
SHARDS = "shards"
STATES = "states"
CONTROLS = "controls"
LOCK = ".mm-align.lock"
OWNER = ".mm-align.owner"


class RunDirError(RuntimeError):
    """A directory cannot be used as a run directory as asked: it holds a run and resume is
    off, the settings changed, it is not a finished run, or a file in it is unreadable."""


class RunLockedError(RunDirError):
    """Another process owns the run directory (see :meth:`RunFiles.locked`)."""


def read_jsonl(path: Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a missing file has none.

    A last line without its newline (a write cut short, or one still in progress) is not a
    record yet. A complete line that is not a JSON object is corrupt: with ``problems`` it
    is skipped and described there (a report can still be drawn), else
    :class:`RunDirError` names the file and line.
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            record, why = None, f"not valid JSON ({exc.msg})"
        else:
            why = "not a JSON object"
        if isinstance(record, dict):
            records.append(record)
        elif problems is None:
            raise RunDirError(f"{path} line {number}: {why}")
        else:
            problems.append(f"{path.name} line {number}: {why}; skipped")
    if lines[-1].strip() and problems is not None:
        problems.append(f"{path.name} line {len(lines)}: cut short (a killed write?); skipped")
    return records


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


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


States = Mapping[int, Mapping[str, "torch.Tensor"]]
"""Sample index -> named tensors kept beside its record (see :meth:`RunFiles.append`)."""


def _state_name(index: int) -> str:
    return f"{index:08d}.safetensors"


def _write_states(folder: Path, index: int, tensors: Mapping[str, torch.Tensor]) -> None:
    """One sample's tensors as ``folder/INDEX.safetensors``, atomically and on disk."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _state_name(index)
    # pid in the temporary name: data-parallel processes share the folder (never an index).
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with tmp.open("wb") as fh:
        fh.write(save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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

        ``config`` is what :meth:`open` writes; its ``"identity"`` (the settings and model /
        data identities that change numbers) must equal the saved one to resume. Read-only,
        so every process of a data-parallel run can check before any writes.
        """
        self._refuse_file()
        path = self.root / CONFIG
        if not path.exists():
            self._refuse_foreign()
            return
        if not resume:
            raise RunDirError(
                f"{self.root} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        try:
            saved = _read_json(path).get("identity", {})
        except (json.JSONDecodeError, AttributeError) as err:
            raise RunDirError(f"cannot resume {self.root}: {CONFIG} is unreadable ({err})") from None
        wanted = config.get("identity", {})
        changed = [
            f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}"
            for k in sorted(set(saved) | set(wanted))
            if saved.get(k) != wanted.get(k)
        ]
        if changed:
            raise RunDirError(
                f"cannot resume {self.root}: the run's settings changed ({'; '.join(changed)})"
            )

    def _refuse_file(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"{self.root} is a file, not a run directory; choose another --out")

    def _refuse_foreign(self) -> None:
        """A folder without ``config.json`` must hold nothing but a lock left by a start."""
        if not self.root.is_dir():
            return
        # Our lock files, and a temporary file a kill left before its rename, do not count.
        found = sorted(p.name for p in self.root.iterdir()
                       if p.name not in (LOCK, OWNER) and not (p.name.startswith(".") and p.name.endswith(".tmp")))
        records = [name for name in (RESULTS, ERRORS, SHARDS) if name in found]
        if records:
            raise RunDirError(
                f"{self.root} holds {', '.join(records)} but no {CONFIG}: records of an unknown "
                "run are never taken in; move them away or choose another --out"
            )
        if found:
            raise RunDirError(
                f"{self.root} is not empty and is not an mm-align run (no {CONFIG}; it holds "
                f"{', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); choose a new or "
                "empty --out"
            )

    @contextmanager
    def locked(self) -> Iterator[RunFiles]:
        """Own the run directory (created if needed) for the ``with`` block.

        The lock is an OS lock on ``.mm-align.lock``; ``.mm-align.owner`` says who holds it.
        Taken before :meth:`check`, so no other process can start, check or write in between.

        Raises:
            RunLockedError: another process holds it (named by pid, host and start time).
        """
        from filelock import FileLock, Timeout

        self._refuse_file()
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunLockedError(
                f"{self.root} is in use by {self._holder()}; wait for that run to end (or stop "
                "it), or choose another --out"
            ) from None
        try:
            _write_json(self.root / OWNER, {"pid": os.getpid(), "host": socket.gethostname(),
                                            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            yield self
        finally:
            (self.root / OWNER).unlink(missing_ok=True)  # before the release: never a stale name
            lock.release()

    def _holder(self) -> str:
        try:
            owner = _read_json(self.root / OWNER)
            return f"process {owner['pid']} on {owner['host']} (started {owner['started']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (it is starting: no owner recorded yet)"

    def open(self, config: Mapping[str, Any] | None) -> None:
        """Prepare this process's files; ``config`` is written by the main process only.

        ``results.jsonl`` and ``errors.jsonl`` exist from here on, empty or not."""
        self.own.mkdir(parents=True, exist_ok=True)
        if config is not None and not (self.root / CONFIG).exists():
            _write_json(self.root / CONFIG, dict(config))
        for name in (RESULTS, ERRORS):
            _repair_tail(self.own / name)
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
            _write_states(self.root / STATES, index, tensors)
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
        """All error records, in dataset order."""
        return sorted(read_jsonl(self.root / ERRORS), key=lambda r: r["index"])

    def state_keys(self, index: int) -> list[str]:
        """Names of the tensors kept for sample ``index`` (empty when none were kept)."""
        from safetensors import safe_open

        path = self.root / STATES / _state_name(index)
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

        path = self.root / STATES / _state_name(index)
        if not path.is_file():
            raise RunDirError(f"{path}: no states kept for sample {index} (was the run scored without --metrics?)")
        with safe_open(path, framework="pt") as f:
            missing = sorted(set(keys or ()) - set(f.keys()))
            if missing:
                raise RunDirError(f"{path} lacks {', '.join(missing)}")
            return {k: f.get_tensor(k) for k in (f.keys() if keys is None else keys)}

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (written by :meth:`write_summary` when the run completed)."""
        return _read_json(self.root / SUMMARY)

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.root / SUMMARY
        _write_json(path, dict(summary))
        return path


class MemoryRun:
    """A run kept in memory (``out=None``): the writer interface of :class:`RunFiles`
    without files, for notebooks."""

    def __init__(self) -> None:
        self._results: list[dict[str, Any]] = []
        self._errors: list[dict[str, Any]] = []
        self._states: dict[int, dict[str, torch.Tensor]] = {}
        self.summary: dict[str, Any] = {}

    @contextmanager
    def locked(self) -> Iterator[MemoryRun]:
        """Nothing to lock: a memory run belongs to its caller alone."""
        yield self

    def check(self, config: Mapping[str, Any], resume: bool) -> None:
        """Nothing to check: a memory run always starts empty."""

    def open(self, config: Mapping[str, Any] | None) -> None:
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

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        self.summary = dict(summary)


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
    def command(self) -> str:
        """``"diff-erank"`` for a text LLM's Diff-eRank run (its summary holds
        ``diff_erank.paper``), else ``"score"``."""
        diff = self.summary.get("diff_erank")
        return "diff-erank" if isinstance(diff, Mapping) and "paper" in diff else "score"

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
        """Image-text alignment per layer, as the summary records it (``summary["layers"]
        ["image_text_alignment"]``); empty when not swept."""
        raw = self.summary.get("layers")
        table = _layer_table({"a": raw.get("image_text_alignment")} if isinstance(raw, Mapping) else {})
        return table.get("a", {})

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
    problems: list[str] = []
    results = read_jsonl(path / RESULTS, problems)
    errors = read_jsonl(path / ERRORS, problems)
    _refuse_duplicates(path, results, errors)
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


# ---- A series of runs (``mm-align scaling``, ``mm-align sweep``) --------------------------

MEMBERS = "members"
SERIES = {"scaling": "scaling.json", "sweep": "sweep.json"}
"""A series' kind -> the document its directory holds once the series is finished."""


def member_dir(root: str | Path, name: str) -> Path:
    """``ROOT/members/NAME``: the run directory of one model of a series."""
    return Path(root) / MEMBERS / name


def is_finished(run_dir: str | Path) -> bool:
    """Whether a run directory holds its ``summary.json`` (the run completed)."""
    return (Path(run_dir) / SUMMARY).is_file()


def series_kind(root: str | Path) -> str | None:
    """``"scaling"`` or ``"sweep"`` when ``root`` holds that finished series, else None."""
    return next((kind for kind, name in SERIES.items() if (Path(root) / name).is_file()), None)


def write_series(root: str | Path, kind: str, doc: Mapping[str, Any]) -> Path:
    """Write a series' document (``ROOT/scaling.json`` or ``sweep.json``, atomically) and
    return its path."""
    path = Path(root) / SERIES[kind]
    _write_json(path, dict(doc))
    return path


def read_series(root: str | Path, kind: str) -> dict[str, Any]:
    """The document of a finished series of ``kind``.

    Raises:
        RunDirError: no such file, or not a JSON object.
    """
    path = Path(root) / SERIES[kind]
    try:
        doc = _read_json(path)
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
