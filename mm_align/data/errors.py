"""The two errors of the data layer.

A :class:`ManifestError` means the description of the data set itself is broken (bad JSON,
a missing column, a duplicate id); it is raised when the data set is opened, before
anything is scored. A :class:`BadSampleError` concerns one sample (its image is missing or
corrupt, its text is empty); it is raised lazily by that sample only, so the caller
records it and goes on with the next sample.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BadSampleError", "ManifestError"]


class BadSampleError(Exception):
    """One sample cannot be used; ``reason`` says why, in words fit for an error log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ManifestError(ValueError):
    """The data set description is malformed.

    ``path`` is the offending file; ``line`` (1-based, text formats) or ``item`` (0-based
    position in a JSON document's list) locates the problem when it is local to a record.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        item: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.message = message
        self.line = line
        self.item = item
        if line is not None:
            where = f"{self.path}:{line}"
        elif item is not None:
            where = f"{self.path} (item {item})"
        else:
            where = str(self.path)
        super().__init__(f"{where}: {message}")
