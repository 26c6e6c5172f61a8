"""How a command ends when it is stopped or its report fails: one line, never a traceback.

* Ctrl-C (SIGINT) and SIGTERM (``kill``, a batch scheduler's time limit) unwind the command
  like an exception, so every ``finally`` runs: the run folder's owner note and temporary
  files are removed, the records already appended stay. The command then prints
  ``mm-align: interrupted; resume with --resume`` and exits 130 (SIGINT) or 143 (SIGTERM),
  the shell's codes for those signals. ``-v`` shows the traceback instead.
* A report that cannot be written after a run (a full disk) raises
  :class:`~mm_align.report_failures.ReportError`: :func:`mm_align.cli.main` prints its one line and exits 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from mm_align.report_failures import failing_reports

__all__ = ["Terminated", "run_command"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, like Ctrl-C's KeyboardInterrupt."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the block (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``func(args)``'s exit code; stopped by SIGINT or SIGTERM: one line and 130 or 143."""
    try:
        with _sigterm_unwinds(), failing_reports():
            return int(func(args) or 0)
    except KeyboardInterrupt as stop:
        if getattr(args, "verbose", 0):
            raise
        hint = "; resume with --resume" if hasattr(args, "resume") else ""
        print(f"mm-align: interrupted{hint}", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
