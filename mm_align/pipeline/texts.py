"""Text-only data sets for ``diff_erank``: texts become image-less :class:`Sample` objects.

Formats (detected from the path):

* ``.txt``: one text per line; blank lines are skipped; the id is the 1-based line number,
  so an error in errors.jsonl points straight at the line.
* ``.jsonl`` / ``.csv``: a ``text`` column (or ``text_column``), else ``instruction`` +
  ``response`` joined like the paper (:func:`mm_align.data.join_instruction_response`);
  optional ``id``. The column rules are the data layer's (:class:`RecordReader`).
* a folder written by ``datasets``' ``save_to_disk`` (a Dataset, or a DatasetDict with a
  single split or a ``train`` split), or a hub data set name (its ``train`` split).

Malformed input raises :class:`~mm_align.data.ManifestError` with the file and line (or
item) before anything is scored; an empty text is not malformed, it becomes a sample that
fails ``check_text()`` and is recorded as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mm_align.data import ManifestError, Sample, SampleSource
from mm_align.data.manifest import csv_records, jsonl_records
from mm_align.data.rows import Columns, RecordReader, place
from mm_align.data.samples import unicode_checked

__all__ = ["open_texts"]

_SAVE_TO_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def open_texts(path: str | Path, *, text_column: str | None = None) -> SampleSource:
    """Open a text data set (see the module doc) as a :class:`SampleSource`.

    Raises:
        ManifestError: unknown layout, bad JSON / CSV, missing text column, non-string text,
            duplicate id, or undecodable UTF-8, located by line (or item).
    """
    p = Path(path)
    columns = Columns().with_overrides(None, text_column)
    suffix = p.suffix.lower()
    if p.is_file() and suffix == ".txt":
        return SampleSource(_txt_samples(p), fmt="txt", path=p)
    if p.is_file() and suffix in (".jsonl", ".csv"):
        reader = _reader(p, columns)
        records = csv_records(p) if suffix == ".csv" else jsonl_records(p)
        samples = [_sample(reader, i, rec, line=line) for i, (line, rec) in enumerate(records)]
        return SampleSource(samples, fmt=suffix[1:], path=p)
    if p.is_dir() and any((p / m).is_file() for m in _SAVE_TO_DISK_MARKERS):
        return _from_datasets(p, columns, fmt="save_to_disk")
    if not p.exists() and not p.suffix and "/" in str(path).strip("/"):
        return _from_datasets(str(path), columns, fmt="hub")
    raise ManifestError(
        p,
        "not a text data set: expected a .txt, .jsonl or .csv file, a save_to_disk folder "
        "or a hub data set name (owner/name)",
    )


def _reader(path: str | Path, columns: Columns) -> RecordReader:
    # Only the text and id rules of RecordReader are used: no image paths to resolve.
    return RecordReader(path, Path("."), columns, max_pixels=0)


def _check_text_columns(reader: RecordReader, names: Any, **where: int | None) -> None:
    c = reader.columns
    if c.text not in names and (c.text_named or not {c.instruction, c.response} <= set(names)):
        raise reader.error(
            f"no '{c.text}' column, nor '{c.instruction}' + '{c.response}' "
            f"(columns: {sorted(names)})",
            where,
        )


def _sample(reader: RecordReader, index: int, record: Any, **where: int | None) -> Sample:
    if not isinstance(record, Mapping):
        raise reader.error(f"expected an object, got {type(record).__name__}", where)
    _check_text_columns(reader, record.keys(), **where)
    sample_id = reader.claim_id(record.get(reader.columns.id), index, **where)
    sample = Sample(id=sample_id, index=index, text=reader.text_of(record, **where), image=None)
    return unicode_checked(sample, place(where))


def _txt_samples(path: Path) -> list[Sample]:
    samples: list[Sample] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise ManifestError(
                    path, f"not UTF-8 ({err.reason} at byte {err.start})", line=line_no
                ) from None
            if text.strip():
                samples.append(Sample(id=str(line_no), index=len(samples), text=text, image=None))
    return samples


def _from_datasets(path: str | Path, columns: Columns, fmt: str) -> SampleSource:
    import datasets

    if fmt == "save_to_disk":
        loaded = datasets.load_from_disk(str(path))
    else:
        try:
            loaded = datasets.load_dataset(str(path), split="train")
        except Exception as err:  # datasets raises many unrelated types for "cannot get it"
            raise ManifestError(path, f"could not load from the Hugging Face hub: {err}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1 and "train" not in loaded:
            raise ManifestError(path, f"several splits and no 'train' split: {sorted(loaded)}")
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    reader = _reader(path, columns)
    _check_text_columns(reader, loaded.column_names)
    wanted = [
        c
        for c in (columns.id, columns.text, columns.instruction, columns.response)
        if c in loaded.column_names
    ]
    # Column-wise read of the few needed columns: other columns (e.g. images) stay on disk.
    table = loaded.select_columns(wanted).to_dict()
    return SampleSource(
        [_sample(reader, i, {k: table[k][i] for k in wanted}, item=i) for i in range(len(loaded))],
        fmt=fmt,
        path=path,
    )
