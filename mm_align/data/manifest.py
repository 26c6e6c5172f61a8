"""Line-oriented manifests: JSONL and CSV files, and Hugging Face ``imagefolder`` folders
(a ``metadata.jsonl`` or ``metadata.csv`` whose ``file_name`` column names the images).

Relative image paths are resolved against the manifest's folder (or ``image_root`` when
given); absolute paths are used as they are. Blank JSONL lines are skipped. Line numbers
in errors are 1-based physical lines (a CSV header is line 1).

A manifest is read as a stream: opening it makes one pass (every record validated, ids
claimed, the fingerprint computed, so a malformed manifest fails at once) and every later
pass reads the file again, so memory stays flat however many lines it has.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mm_align.data.errors import ManifestError
from mm_align.data.files import open_regular
from mm_align.data.rows import Columns, RecordReader
from mm_align.data.samples import Sample
from mm_align.data.source import SampleSource

__all__ = ["IMAGEFOLDER_METADATA", "open_imagefolder", "open_manifest"]

#: The metadata file names of an ``imagefolder``, in the order they are looked for.
IMAGEFOLDER_METADATA = ("metadata.jsonl", "metadata.csv")


def open_manifest(
    path: str | Path,
    *,
    columns: Columns,
    image_root: str | Path | None = None,
    max_pixels: int,
    fmt: str | None = None,
) -> SampleSource:
    """Read a ``.jsonl`` or ``.csv`` manifest (``fmt`` forces one of "jsonl", "csv")."""
    path = Path(path)
    fmt = fmt or _format_of(path)
    return _scanned(SampleSource(_read(path, fmt, columns, image_root, max_pixels), fmt=fmt, path=path))


def open_imagefolder(
    folder: str | Path,
    *,
    columns: Columns,
    image_root: str | Path | None = None,
    max_pixels: int,
) -> SampleSource:
    """Read an ``imagefolder`` directory through its metadata file."""
    folder = Path(folder)
    metadata = next(
        (folder / name for name in IMAGEFOLDER_METADATA if (folder / name).is_file()), None
    )
    if metadata is None:
        raise ManifestError(folder, f"no {' or '.join(IMAGEFOLDER_METADATA)} in this folder")
    samples = _read(metadata, _format_of(metadata), columns, image_root, max_pixels)
    return _scanned(SampleSource(samples, fmt="imagefolder", path=folder))


def _scanned(source: SampleSource) -> SampleSource:
    source.scan()  # a malformed manifest fails here, before anything is scored
    return source


def _format_of(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def _read(
    path: Path, fmt: str, columns: Columns, image_root: str | Path | None, max_pixels: int
) -> Callable[[], Iterator[Sample]]:
    """A function that starts a new pass over the manifest's samples."""

    def samples() -> Iterator[Sample]:
        reader = RecordReader(path, Path(image_root or path.parent), columns, max_pixels, content_ids=True)
        records = (
            csv_records(path, check_header=lambda names: reader.check_columns(names, line=1))
            if fmt == "csv"
            else jsonl_records(path)
        )
        for index, (line, record) in enumerate(records):
            yield reader.sample(index, record, line=line)

    return samples


def _utf8_lines(path: Path, raw_lines: Iterator[bytes]) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of each physical line, decoded one line at a time so that
    bytes that are not UTF-8 are reported on their own line (a byte-order mark is accepted)."""
    for line_no, raw in enumerate(raw_lines, start=1):
        try:
            yield line_no, raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise ManifestError(
                path, f"not UTF-8 ({err.reason} at byte {err.start}); save the file as UTF-8",
                line=line_no,
            ) from None


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, decoded value) of each non-blank line; ManifestError on bad JSON
    or text that is not UTF-8 (a byte-order mark is accepted)."""
    with open_regular(path) as f:  # a FIFO named as a manifest must not block
        for line_no, line in _utf8_lines(path, f):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(
                    path, f"invalid JSON ({err.msg} at column {err.colno})", line=line_no
                ) from None


def csv_records(
    path: Path, check_header: Callable[[Sequence[str]], None] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file with a header, which ``check_header`` may refuse;
    ManifestError on a row with more or fewer fields than the header, or on a line that is
    not UTF-8 (spreadsheet programs often write a byte-order mark: it is accepted)."""
    with open_regular(path) as f:  # a FIFO named as a manifest must not block
        # Lines keep their line ends, which is what the csv module wants (newline="").
        rows = csv.DictReader(line for _, line in _utf8_lines(path, f))
        if rows.fieldnames is None:
            raise ManifestError(path, "empty CSV file (no header)", line=1)
        if check_header is not None:
            check_header(rows.fieldnames)
        for row in rows:
            # line_num is the last physical line of the row (quoted fields may span lines).
            if None in row:
                raise ManifestError(path, "more fields than the header", line=rows.line_num)
            if None in row.values():
                raise ManifestError(path, "fewer fields than the header", line=rows.line_num)
            yield rows.line_num, row
