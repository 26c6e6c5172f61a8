"""Who may write an output folder: one owner per folder, one set of refusals, one wording.

Every command that writes a folder (``score``, ``diff-erank``, ``info-gain``,
``attribution``, ``scaling`` and its members, ``sweep``) enters :func:`owned` before it
writes anything. It holds an OS lock (``flock`` through the ``filelock`` package) on
``.mm-align.lock`` for the whole run, so a second start is refused at once, naming the
holder; the OS drops the lock when its process dies, even by ``kill -9``, so a crashed run
never blocks its resume. Then :func:`check` refuses a folder that is not ours (files but no
``config.json``), a run of another command, a finished run without ``resume``, or one with
other settings; :func:`claim` records the run's ``config.json``.

A run that recorded no sample (it failed before scoring, say on a bad ``--layers``) leaves
nothing worth keeping: any new run of its command may take its folder, with any settings. A run that did
record samples is continued with ``resume`` or started over with ``overwrite`` (its files
are deleted first, under the lock; only a folder that is an mm-align run is ever cleared).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mm_align.rundir.kind import run_kind
from mm_align.rundir.layout import (
    CONFIG,
    ERRORS,
    LOCK,
    OWNER,
    RESULTS,
    SHARDS,
    SUMMARY,
    RunDirError,
    RunLockedError,
    read_json,
    remove_temporaries,
    write_json,
)

__all__ = ["check", "claim", "holds_records", "owned"]


def _refuse_file(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise RunDirError(f"{root} is a file, not a run directory; choose another --out")


def _holder(root: Path) -> str:
    try:
        owner = read_json(root / OWNER)
        return f"process {owner['pid']} on {owner['host']} (started {owner['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it is starting: no owner recorded yet)"


def holds_records(root: Path) -> bool:
    """Whether the run in ``root`` (its shards, controls and members included) recorded a
    sample, scored or failed, or wrote a summary."""
    if (root / SUMMARY).exists():
        return True
    return any(p.stat().st_size > 0 for name in (RESULTS, ERRORS) for p in root.rglob(name))


def _clear(root: Path) -> None:
    """Delete a run's files for ``overwrite``: only from a folder that holds an mm-align run."""
    if not (root / CONFIG).exists():
        return  # new, empty or foreign: check() accepts or refuses it, nothing is deleted
    for entry in root.iterdir():
        if entry.name in (LOCK, OWNER):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def owned(root: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Own the folder ``root`` (created if needed) for the ``with`` block; ``overwrite``
    deletes the run it holds first (a folder that is not an mm-align run is left alone).

    ``.mm-align.owner`` says who holds it (pid, host, start time) and is removed before the
    lock is released, so it never names a process that is gone. The temporary files a killed
    run left mid-write (``.summary.json.<pid>.tmp``, ``.report.html.<pid>.tmp``) are removed
    as the folder is taken.

    Raises:
        RunDirError: ``root`` is a file.
        RunLockedError: another process holds it (named by pid, host and start time).
    """
    from filelock import FileLock, Timeout

    root = Path(root)
    _refuse_file(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLockedError(f"{root} is in use by {_holder(root)}; wait for that run to end (or "
                             "stop it), or choose another --out") from None
    try:
        remove_temporaries(root)  # what a killed run left mid-write; we own the folder now
        write_json(root / OWNER, {"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if overwrite:
            _clear(root)
        yield root
    finally:
        (root / OWNER).unlink(missing_ok=True)  # before the release: never a stale name
        lock.release()


def _refuse_foreign(root: Path) -> None:
    """A folder without ``config.json`` must hold nothing but a lock left by a start."""
    if not root.is_dir():
        return
    # Our lock files, and a temporary file a kill left before its rename, do not count.
    found = sorted(p.name for p in root.iterdir()
                   if p.name not in (LOCK, OWNER) and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    records = [name for name in (RESULTS, ERRORS, SHARDS) if name in found]
    if records:
        raise RunDirError(f"{root} holds {', '.join(records)} but no {CONFIG}: records of an "
                          "unknown run are never taken in; move them away or choose another --out")
    if found:
        raise RunDirError(f"{root} is not empty and is not an mm-align run (no {CONFIG}; it holds "
                          f"{', '.join(found[:3])}{', ...' if len(found) > 3 else ''}); choose a "
                          "new or empty --out")


def _changes(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return [f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}"
            for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k)]


def check(root: str | Path, command: str, identity: Mapping[str, Any], resume: bool,
          overwrite: bool = False) -> None:
    """Refuse ``root`` unless it is new, holds a ``command`` run that recorded no sample (any
    new run of that command may take it), or holds a ``command`` run that ``resume`` continues with the same
    ``identity`` (the settings and model / data identities that change numbers), or
    ``overwrite`` is on (:func:`owned` deletes the run).

    Read-only, so every process of a data-parallel run can check before any writes.

    Raises:
        RunDirError: a file; a folder that is not an mm-align run; a run of another command;
            a run while ``resume`` is off; other settings.
    """
    root = Path(root)
    _refuse_file(root)
    path = root / CONFIG
    if not path.exists():
        _refuse_foreign(root)
        return
    try:
        saved = read_json(path)
        kind = run_kind(root, config=saved)
        saved_identity = saved.get("identity", {})
    except (json.JSONDecodeError, AttributeError) as err:
        raise RunDirError(f"cannot use {root}: {CONFIG} is unreadable ({err})") from None
    if overwrite:
        return  # owned() deletes the run
    if kind != command:
        raise RunDirError(f"{root} holds a {kind} run, not a {command} run; choose another --out "
                          "(or pass --overwrite to delete it and start over)")
    if not holds_records(root):
        return  # it failed before recording anything: nothing to continue or to lose
    if not resume:
        raise RunDirError(f"{root} already holds a run; pass --resume to continue it, --overwrite "
                          "to delete it and start over, or choose another --out")
    if changed := _changes(saved_identity, identity):
        raise RunDirError(f"cannot resume {root}: the run's settings changed ({'; '.join(changed)}); "
                          "resume with the run's settings, pass --overwrite to delete it and start "
                          "over, or choose another --out")


def claim(root: str | Path, record: Mapping[str, Any]) -> None:
    """Record the run in ``root/config.json``, unless a resumed run recorded it already (a
    run that recorded no sample is replaced).

    ``record``: ``command`` (the run's kind, :func:`~mm_align.rundir.kind.run_kind`),
    ``config`` (the options as data) and ``identity`` (what :func:`check` compares)."""
    path = Path(root) / CONFIG
    if not path.exists() or not holds_records(Path(root)):
        Path(root).mkdir(parents=True, exist_ok=True)
        write_json(path, dict(record))
