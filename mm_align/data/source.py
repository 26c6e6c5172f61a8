"""SampleSource: what :func:`~mm_align.data.open_dataset` returns, over a list of samples or
a stream of them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mm_align.data.content import image_digest, length_prefixed, media_digest, utf8
from mm_align.data.samples import Sample

__all__ = ["SampleSource"]

_FINGERPRINT_SALT = b"mm-align samples v1\n"


class SampleSource:
    """The samples of one data set, in order.

    ``samples`` is either a sequence (texts and ids read and records validated when the
    source was opened; images only referenced) or a function that starts a new pass over a
    stream (WebDataset shards, parquet files, hub streams: nothing is held, each pass reads
    the data again). Either way images are decoded only by :meth:`Sample.load_image`, so
    iterating is cheap and memory stays flat however large the data set.

    A stream's length and fingerprint take one pass that reads every sample's bytes but
    decodes no image (:meth:`scan`); it also finds a malformed record or a repeated id
    before anything is scored. A stream has no random access.

    Args:
        samples: the samples (any ``Sequence``), or a function returning a new iterator.
        fmt: the format name (see ``mm_align.data.FORMATS``).
        path: the file, folder or hub name the samples were read from.
    """

    def __init__(self, samples: Sequence[Sample] | Callable[[], Iterator[Sample]], *, fmt: str,
                 path: str | Path) -> None:
        self._samples = samples
        self.fmt = fmt
        self.path = str(path)
        self._fingerprint: str | None = None
        self._length: int | None = None

    @property
    def is_stream(self) -> bool:
        """True when the samples are read afresh on every pass (no random access)."""
        return callable(self._samples)

    def __len__(self) -> int:
        if callable(self._samples):
            self.scan()
            assert self._length is not None
            return self._length
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        if callable(self._samples):
            yield from self._samples()
            return
        for i in range(len(self._samples)):
            yield self._samples[i]

    def __getitem__(self, index: int) -> Sample:
        if callable(self._samples):
            raise TypeError(f"{self.describe()} is a stream: it has no random access")
        return self._samples[index]

    def describe(self) -> str:
        """One line for provenance: format, where from, how many samples."""
        return f"{self.fmt} {self.path} ({len(self)} samples)"

    def scan(self) -> None:
        """Count the samples and compute the fingerprint in one pass (once)."""
        if self._fingerprint is not None:
            return
        total = hashlib.sha256(_FINGERPRINT_SALT)
        n = 0
        for sample in self:
            # An audio file enters only where there is one: image data sets keep their prints.
            audio = () if sample.audio is None else (b"audio", image_digest(sample.audio))
            length_prefixed(total, utf8(sample.id), utf8(sample.text),
                            media_digest(sample.image, sample.images, sample.video), *audio)
            n += 1
        self._fingerprint, self._length = total.hexdigest(), n

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the content: every sample's id, text, image and audio bytes, in data set
        order (for shards: shards in name order, members in archive order).

        The format and the location do not enter, so the same pairs give the same
        fingerprint whether they come from a JSONL manifest, an image folder, a parquet
        file or WebDataset shards (with content ids, :mod:`~mm_align.data.content`, the ids
        themselves come from the pairs). Image files are hashed whole up to 64 MiB
        (streamed, never held whole), larger ones by size and evenly spaced blocks
        (:func:`~mm_align.data.files.bounded_digest`); a path that is missing, unreadable
        or not a regular file (a FIFO, a device) is never read and hashes as a marker, and so
        does an in-memory image that cannot be read; a lone surrogate in a text or an id is
        hashed as it is: a data set with bad samples still has a fingerprint, and hashing
        never fails on one record. Computed once.
        """
        self.scan()
        assert self._fingerprint is not None
        return self._fingerprint
