"""Warnings that point at the user's code, not at the mm_align line that raised them.

A fixed ``stacklevel`` is right for one call path only: ``erank()`` called directly and
``erank()`` called through the pipeline sit at different depths below the user's line.
Counting the frames at warning time finds the caller wherever the warning comes from.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["warn"]

_PACKAGE = __name__.partition(".")[0]


def _in_package(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def _caller_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` called from :func:`warn` that names the
    caller of the outermost mm_align frame on the stack.

    The outermost, not the innermost: the pipeline calls mm_align code through torch
    (forward hooks), and the torch frame between two mm_align frames is not the user's.
    """
    frame: FrameType | None = sys._getframe(2)  # the function that called warn()
    level, outermost = 2, 1  # level 1 is warn() itself
    while frame is not None:
        if _in_package(frame):
            outermost = level
        frame = frame.f_back
        level += 1
    return outermost + 1


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` attributed to the code that called into mm_align.

    When mm_align is the outermost code (``python -m mm_align``, the ``mm-align`` script),
    the warning names the line that started it.
    """
    warnings.warn(message, category, stacklevel=_caller_stacklevel())
