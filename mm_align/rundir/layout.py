"""The names of a run directory's files and the primitives that read and write them:
JSON and JSON-lines (atomic, fsync'ed appends, a cut-short last line ignored) and the
per-sample tensor files. No policy here: who may write is :mod:`~mm_align.rundir.owner`,
what is written is :mod:`~mm_align.rundir.writers`.

Every write goes through :func:`writing`: an OS error names the file being written (a full
disk's ``[Errno 28]`` comes from ``write()``, which names none), and the temporary file of an
atomic write is removed however the write ends (an error, Ctrl-C, SIGTERM); one a kill -9 left
is removed by the next owner of the folder (:func:`remove_temporaries`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is loaded only where states are read or written
    import torch

RESULTS = "results.jsonl"
ERRORS = "errors.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
SHARDS = "shards"
STATES = "states"
CONTROLS = "controls"
REPORT = "report.html"
LOCK = ".mm-align.lock"
OWNER = ".mm-align.owner"


class RunDirError(RuntimeError):
    """A directory cannot be used as a run directory as asked: it holds a run and resume is
    off, the settings changed, it is not a finished run, or a file in it is unreadable."""


class RunLockedError(RunDirError):
    """Another process owns the run directory (see :func:`mm_align.rundir.owner.owned`)."""


def read_jsonl(path: Path, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (see :func:`numbered_jsonl`)."""
    return [record for _, record in numbered_jsonl(path, problems)]


def numbered_jsonl(path: Path, problems: list[str] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``(1-based line, object)`` of each record of a JSON-lines file; a missing file has none.

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
            records.append((number, record))
        elif problems is None:
            raise RunDirError(f"{path} line {number}: {why}")
        else:
            problems.append(f"{path.name} line {number}: {why}; skipped")
    if lines[-1].strip() and problems is not None:
        problems.append(f"{path.name} line {len(lines)}: cut short (a killed write?); skipped")
    return records


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def repair_tail(path: Path) -> None:
    """Cut a trailing line that a kill left without its newline, before appending."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


@contextmanager
def writing(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Write ``path`` (through ``tmp``, removed at the end if still there) in the block; an
    OSError that names no file is raised again naming ``path``."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def temporary(path: Path) -> Path:
    """The temporary name of an atomic write of ``path``: hidden, with this process's pid
    (data-parallel processes may write in one folder), ending ``.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_temporaries(root: Path) -> list[str]:
    """Remove the temporary files of atomic writes of a run's files (:func:`temporary`) that a
    killed process left in ``root``; only its owner may call this, and files of other names
    are never touched. Returns their names."""
    ours = {f".{name}" for name in (CONFIG, SUMMARY, RESULTS, ERRORS, REPORT)}
    stale = sorted(p for p in root.glob(".*.tmp")
                   if p.is_file() and p.name.rsplit(".", 2)[0] in ours and p.name.rsplit(".", 2)[1].isdigit())
    for p in stale:
        p.unlink(missing_ok=True)
    return [p.name for p in stale]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: a reader never sees half a file."""
    tmp = temporary(path)
    with writing(path, tmp):
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


States = Mapping[int, Mapping[str, "torch.Tensor"]]
"""Sample index -> named tensors kept beside its record (see :meth:`~mm_align.rundir.writers.RunFiles.append`)."""


def state_name(index: int) -> str:
    return f"{index:08d}.safetensors"


def write_states(folder: Path, index: int, tensors: Mapping[str, torch.Tensor]) -> None:
    """One sample's tensors as ``folder/INDEX.safetensors``, atomically and on disk."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / state_name(index)
    tmp = temporary(path)  # pid in the name: data-parallel processes share the folder
    with writing(path, tmp):
        with tmp.open("wb") as fh:
            fh.write(save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def to_jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
