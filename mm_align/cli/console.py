"""What a command prints around its results: warnings as one line, the last line that counts
the failed samples, ``--fail-on-errors`` and the config of a parsed command line.

Exit codes of ``mm-align``: 0 done; 1 an error (one line on stderr); 2 a usage error;
3 (with ``--fail-on-errors``) the run finished but some samples failed.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO, TypeVar

from mm_align.cli.checkpoint import check_models

__all__ = ["EXIT_SAMPLES_FAILED", "add_fail_option", "config_of", "failures_line",
           "finish", "one_line_warnings"]

EXIT_SAMPLES_FAILED = 3
_C = TypeVar("_C")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """A warning as ``mm-align: warning: MESSAGE`` (no file, line or source echo)."""
    text = " ".join(str(message).split())
    print(f"mm-align: warning: {text}", file=file or sys.stderr)


def one_line_warnings() -> None:
    """Print every warning of this process as one clean line."""
    warnings.showwarning = _show_warning


def add_fail_option(parser: argparse.ArgumentParser) -> None:
    """``--fail-on-errors``: exit 3 when the run finished but some samples failed."""
    parser.add_argument("--fail-on-errors", action="store_true",
                        help=f"exit with code {EXIT_SAMPLES_FAILED} when some samples failed (they "
                             "are in OUT/errors.jsonl; default: exit 0 once the run is written)")


def config_of(cls: type[_C], args: argparse.Namespace) -> _C:
    """The command's config from ``args``: ``-q`` turns the progress bars off, and every
    ``--model`` is checked before the heavy imports."""
    if getattr(args, "quiet", False):
        args.progress = False
    config = cls.from_args(args)  # type: ignore[attr-defined]  # every config class has it
    check_models(args)
    return config  # type: ignore[no-any-return]


def failures_line(n_errors: int, n_total: int, out: str | Path | None) -> str:
    """``2 of 4 samples failed, see RUN/errors.jsonl``, or ``""`` when none failed."""
    if not n_errors:
        return ""
    where = f", see {Path(out) / 'errors.jsonl'}" if out is not None else ""
    return f"{n_errors} of {n_total} samples failed{where}"


def finish(args: argparse.Namespace, summary: dict[str, Any], out: str | Path | None,
           table: str) -> int:
    """Print ``table`` (not under ``-q``), where the results are, and last the failures
    line (always); the exit code (:data:`EXIT_SAMPLES_FAILED` with ``--fail-on-errors``)."""
    if not args.quiet:
        print(table)
        print(f"\nresults in {out}")
    n_errors = int(summary.get("n_errors", 0))
    if line := failures_line(n_errors, n_errors + int(summary.get("n_samples", 0)), out):
        print(f"mm-align: {line}", file=sys.stderr)
    return EXIT_SAMPLES_FAILED if n_errors and getattr(args, "fail_on_errors", False) else 0
