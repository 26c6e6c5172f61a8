"""The run directory: the one package that writes and reads a run's files.

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

Modules, one concept each: :mod:`~mm_align.rundir.layout` (file names, JSON / JSON-lines
primitives), :mod:`~mm_align.rundir.kind` (the command that wrote a folder, from
``config.json["command"]``), :mod:`~mm_align.rundir.schema` (summary.json's typed layout and
version: its only writer and reader), :mod:`~mm_align.rundir.owner` (one owner per folder: the
OS lock and every refusal), :mod:`~mm_align.rundir.writers` (:class:`RunFiles`,
:class:`MemoryRun`), :mod:`~mm_align.rundir.reader` (:func:`load_run`, :class:`Run`) and
:mod:`~mm_align.rundir.series` (scaling and sweep folders). The names below are re-exported
here, so callers import them from ``mm_align.rundir``.
"""

from mm_align.rundir.kind import COMMANDS, SERIES, run_kind
from mm_align.rundir.layout import (
    CONFIG,
    CONTROLS,
    ERRORS,
    LOCK,
    OWNER,
    RESULTS,
    SHARDS,
    STATES,
    SUMMARY,
    RunDirError,
    RunLockedError,
    States,
    read_jsonl,
)
from mm_align.rundir.owner import check, claim, owned
from mm_align.rundir.reader import Run, load_run
from mm_align.rundir.schema import SCHEMA_VERSION, Summary, read_summary, write_summary
from mm_align.rundir.series import (
    MEMBERS,
    expand_series,
    is_finished,
    member_dir,
    read_series,
    series_kind,
    write_series,
)
from mm_align.rundir.writers import MemoryRun, RunFiles

__all__ = [
    "COMMANDS",
    "CONFIG",
    "CONTROLS",
    "ERRORS",
    "LOCK",
    "MEMBERS",
    "OWNER",
    "RESULTS",
    "SCHEMA_VERSION",
    "SERIES",
    "SHARDS",
    "STATES",
    "SUMMARY",
    "MemoryRun",
    "Run",
    "RunDirError",
    "RunFiles",
    "RunLockedError",
    "States",
    "Summary",
    "check",
    "claim",
    "expand_series",
    "is_finished",
    "load_run",
    "member_dir",
    "owned",
    "read_jsonl",
    "read_series",
    "read_summary",
    "run_kind",
    "series_kind",
    "write_series",
    "write_summary",
]
