"""Records of a stream (WebDataset shards, parquet rows, a streamed hub data set) turned into
samples one at a time, with the same column rules as every other format
(:mod:`~mm_align.data.rows`).

A stream is read afresh on every pass, so nothing is held but the ids seen so far (to
refuse a repeated id, or number a repeated pair). The columns are detected from the first
record. A record that cannot be read (a member that is not UTF-8, a cell of the wrong
type, a missing caption) becomes a sample that fails with that reason and its ``origin``
(shard and key, or file and row); the stream goes on. Only what makes the whole data set
unusable (no image or text column, a repeated explicit id, an archive or file that cannot
be read) is a :class:`~mm_align.data.errors.ManifestError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mm_align.data.content import content_id
from mm_align.data.errors import ManifestError
from mm_align.data.rows import RecordReader
from mm_align.data.samples import Sample, unicode_checked

__all__ = ["Record", "stream_samples"]

#: ``(origin, record)``: where the record comes from, and its columns (or why it is unreadable).
Record = tuple[str, Mapping[str, Any] | str]


def stream_samples(reader: RecordReader, records: Iterable[Record]) -> Iterator[Sample]:
    """The samples of ``records``, numbered in order; ``reader`` is fresh for each pass."""
    roles: tuple[str, ...] = ()
    for index, (origin, record) in enumerate(records):
        if not roles and isinstance(record, Mapping):
            reader.check_columns(record.keys(), item=index)  # detects the columns, once
            c = reader.columns
            roles = (c.image, c.text) if c.text in record else (c.image, c.instruction, c.response)
        yield _sample(reader, index, origin, record, roles)


def _sample(reader: RecordReader, index: int, origin: str, record: Mapping[str, Any] | str,
            roles: tuple[str, ...]) -> Sample:
    text, image, problem = "", None, record if isinstance(record, str) else None
    if isinstance(record, Mapping):
        # A missing member or a null cell is that sample's problem, not the stream's.
        record = {**{role: None for role in roles}, **record}
        try:
            text = reader.text_of(_decoded(record, reader.columns.text), item=index)
            image = reader.image_of(record[reader.columns.image], item=index)
        except (ManifestError, UnicodeDecodeError) as err:
            problem = getattr(err, "message", None) or f"'{reader.columns.text}' is not UTF-8 ({err})"
    raw_id = record.get(reader.columns.id) if isinstance(record, Mapping) else None
    # An unreadable record has nothing trustworthy to hash but its place.
    hashed = (image, text) if problem is None else (None, origin)
    content = (lambda: content_id(*hashed)) if reader.content_ids else None
    sample_id = reader.claim_id(raw_id, index, content, item=index)
    return unicode_checked(Sample(sample_id, index, text, image, reader.max_pixels, origin=origin, problem=problem),
                           origin)


def _decoded(record: dict[str, Any], column: str) -> dict[str, Any]:
    """``record`` with a text held as bytes (a WebDataset ``txt`` member) decoded as UTF-8."""
    value = record.get(column)
    return {**record, column: value.decode("utf-8")} if isinstance(value, bytes) else record
