"""Whether a report that cannot be written fails the command (the CLI) or is logged (the API).

A leaf module: the CLI enters :func:`failing_reports` before it imports the command's heavy
modules, so a refusal that comes first (a missing checkpoint) still loads no torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["ReportError", "failing_reports", "reports_fail"]

_REPORTS_FAIL = ContextVar("mm_align_reports_fail", default=False)


class ReportError(RuntimeError):
    """A run's numbers are on disk but its report could not be written."""


@contextmanager
def failing_reports() -> Iterator[None]:
    """Inside the block, a report that cannot be written after a run raises
    :class:`ReportError` (the CLI exits non-zero) instead of being logged in one line."""
    token = _REPORTS_FAIL.set(True)
    try:
        yield
    finally:
        _REPORTS_FAIL.reset(token)


def reports_fail() -> bool:
    """Whether the caller is inside :func:`failing_reports`."""
    return _REPORTS_FAIL.get()
