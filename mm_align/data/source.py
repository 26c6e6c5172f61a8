"""SampleSource: what :func:`~mm_align.data.open_dataset` returns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image

from mm_align.data.files import bounded_digest, open_regular
from mm_align.data.samples import ImageRef, Sample

__all__ = ["SampleSource"]


class SampleSource:
    """The samples of one data set, in order.

    Texts and ids were read (and the records validated) when the source was opened; images
    are only referenced, and decoded by :meth:`Sample.load_image`, so iterating is cheap
    and memory stays flat however large the data set.

    Args:
        samples: the samples, built eagerly or on access (any ``Sequence``).
        fmt: the format name (see ``mm_align.data.FORMATS``).
        path: the file, folder or hub name the samples were read from.
    """

    def __init__(self, samples: Sequence[Sample], *, fmt: str, path: str | Path) -> None:
        self._samples = samples
        self.fmt = fmt
        self.path = str(path)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self._samples)):
            yield self._samples[i]

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]

    def describe(self) -> str:
        """One line for provenance: format, where from, how many samples."""
        return f"{self.fmt} {self.path} ({len(self)} samples)"

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the content: every sample's id, text and image bytes, in order.

        The format and the location do not enter, so the same pairs give the same
        fingerprint whether they come from a JSONL manifest or an image folder. Image
        files are hashed whole up to 64 MiB (streamed, never held whole), larger ones by
        size and evenly spaced blocks (:func:`~mm_align.data.files.bounded_digest`); a path
        that is missing, unreadable or not a regular file (a FIFO, a device) is never read
        and hashes as a marker, so a data set with bad samples still has a fingerprint.
        Computed once.
        """
        if self._fingerprint is None:
            total = hashlib.sha256(b"mm-align samples v1\n")
            for sample in self:
                for part in (sample.id.encode(), sample.text.encode(), _image_digest(sample.image)):
                    # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
                    total.update(len(part).to_bytes(8, "little"))
                    total.update(part)
            self._fingerprint = total.hexdigest()
        return self._fingerprint


def _image_digest(ref: ImageRef) -> bytes:
    if ref is None:
        return b"no image"
    if isinstance(ref, Image.Image):
        h = hashlib.sha256(f"{ref.mode} {ref.size}\n".encode())
        h.update(ref.tobytes())
        return h.digest()
    if isinstance(ref, bytes):
        return hashlib.sha256(ref).digest()
    try:
        with open_regular(ref) as f:
            return bounded_digest(f)
    except OSError as err:
        return f"unreadable: {type(err).__name__}".encode()
