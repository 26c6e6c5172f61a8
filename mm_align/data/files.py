"""Reading files a user named without trusting what they are: only regular files are opened
for their content, and content hashes read a bounded number of bytes.

A path in a manifest may point at a FIFO (reading blocks until a writer comes, possibly
forever), a device such as ``/dev/zero`` (endless), or a folder. :func:`open_regular` opens
without blocking (``O_NONBLOCK``) and checks what the descriptor really is (``fstat`` on the
open descriptor, so a file swapped between a check and the open cannot slip through)
before anything is read. :func:`bounded_digest` hashes a file whole up to a byte budget and,
beyond it, its size plus evenly spaced blocks, so fingerprinting a data set or a checkpoint
costs a bounded amount of I/O per file.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from mm_align.data.errors import BadSampleError

__all__ = ["NotRegularFileError", "bounded_digest", "open_media", "open_regular"]

#: Files up to this size are hashed whole (every image file in practice); larger ones by blocks.
DIGEST_BUDGET = 64 << 20
_BLOCK = 1 << 20

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class NotRegularFileError(OSError):
    """The path exists but is not a regular file (a folder, FIFO, device or socket)."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for binary reading, never blocking and only if it is a regular file.

    Raises:
        NotRegularFileError: the path is a folder, FIFO, device or socket (says which).
        OSError: it does not exist or cannot be opened (FileNotFoundError, PermissionError).
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"{path} is {_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # plain reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def bounded_digest(fh: BinaryIO, budget: int = DIGEST_BUDGET) -> bytes:
    """sha256 of an open regular file: of its bytes when it has at most ``budget`` of them
    (the same digest as hashing the file whole), else of its size and ``budget`` bytes read
    as evenly spaced 1 MiB blocks from its first to its last byte."""
    size = os.fstat(fh.fileno()).st_size
    digest = hashlib.sha256()
    if size <= budget:
        while chunk := fh.read(_BLOCK):
            digest.update(chunk)
        return digest.digest()
    digest.update(f"size {size}\n".encode())
    blocks = max(2, budget // _BLOCK)
    step = (size - _BLOCK) / (blocks - 1)
    for i in range(blocks):
        fh.seek(round(i * step))
        digest.update(fh.read(_BLOCK))
    return digest.digest()


def open_media(ref: Path | bytes, what: str, other: str = "") -> tuple[BinaryIO, str]:
    """``ref`` open for reading (a path: a regular file only; bytes: in memory) and its name
    for messages; a missing or unreadable file is a :class:`BadSampleError` naming ``what``
    ("image", "video"; ``other``: what else the path could have been, e.g. " or a folder")."""
    name = str(ref) if isinstance(ref, Path) else f"<{len(ref)} bytes>"
    try:
        return (open_regular(ref) if isinstance(ref, Path) else io.BytesIO(ref)), name
    except FileNotFoundError:
        raise BadSampleError(f"{what} file not found: {name}") from None
    except NotRegularFileError as err:
        raise BadSampleError(f"{what} path is not a regular file{other}: {err}") from None
    except OSError as err:
        raise BadSampleError(f"{what} file could not be read: {name} ({err.strerror})") from None
