"""Hugging Face ``datasets``: folders written by ``save_to_disk`` and hub data sets.

Images may be an ``Image`` feature (read with ``decode=False``, so the encoded bytes or the
file path reach :func:`~mm_align.data.images.load_rgb` untouched and are only read on
access), a string column of paths (relative ones resolved against ``image_root``, by
default the dataset folder, or the working directory for hub data sets) or a binary column;
an ``audio`` column (an ``Audio`` feature read likewise, paths or bytes) serves audio-language
models. Ids and texts are read up front as columns (content ids, when there is no id column, read
every image's bytes once); each image is decoded when its sample is accessed. A
``DatasetDict`` needs ``split`` unless it holds a single split. A hub data set opened with
``streaming=True`` is never downloaded whole: it is read row by row on every pass
(:mod:`~mm_align.data.stream`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_align.data.content import content_id
from mm_align.data.errors import ManifestError
from mm_align.data.rows import Columns, RecordReader
from mm_align.data.samples import Sample
from mm_align.data.source import SampleSource
from mm_align.data.stream import stream_samples

if TYPE_CHECKING:
    import datasets

__all__ = ["open_hub", "open_saved"]


def open_saved(
    path: str | Path,
    *,
    split: str | None,
    columns: Columns,
    image_root: str | Path | None,
    max_pixels: int,
) -> SampleSource:
    """Open a ``Dataset`` or ``DatasetDict`` written by ``save_to_disk``."""
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        loaded = _pick_split(loaded, split, path)
    return from_dataset(
        loaded, path, "save_to_disk", columns, Path(image_root or path), max_pixels
    )


def open_hub(
    name: str,
    *,
    split: str | None,
    columns: Columns,
    image_root: str | Path | None,
    max_pixels: int,
    streaming: bool = False,
) -> SampleSource:
    """Open a hub data set with ``datasets.load_dataset`` (needs network or a local cache);
    ``streaming``: read it row by row on each pass instead of downloading it."""
    import datasets

    def load() -> Any:
        try:
            return datasets.load_dataset(name, split=split or "train", streaming=streaming)
        except Exception as err:  # datasets raises many unrelated types for "cannot get it"
            raise ManifestError(name, f"could not load from the Hugging Face hub: {err}") from err

    if not streaming:
        return from_dataset(load(), name, "hub", columns, Path(image_root or "."), max_pixels)
    load()  # fail now, not on the first pass

    def samples() -> Iterator[Sample]:
        rows = _undecoded(load())
        reader = RecordReader(name, Path(image_root or "."), columns, max_pixels, content_ids=True)
        return stream_samples(reader, ((f"{name} row {i}", row) for i, row in enumerate(rows)))

    return SampleSource(samples, fmt="hub stream", path=name)


def _undecoded(dataset: Any) -> Any:
    """``dataset`` with its image and audio features left encoded (bytes or path, decoded by
    mm-align on access)."""
    import datasets

    for name, feature in (dataset.features or {}).items():
        if isinstance(feature, (datasets.Image, datasets.Audio)):
            dataset = dataset.cast_column(name, type(feature)(decode=False))
    return dataset


def _pick_split(
    splits: datasets.DatasetDict, split: str | None, path: str | Path
) -> datasets.Dataset:
    if split is None and len(splits) == 1:
        return next(iter(splits.values()))
    if split not in splits:
        raise ManifestError(path, f"choose a split (split= / --split) among {sorted(splits)}")
    return splits[split]


def from_dataset(
    dataset: datasets.Dataset,
    path: str | Path,
    fmt: str,
    columns: Columns,
    base_dir: Path,
    max_pixels: int,
) -> SampleSource:
    reader = RecordReader(path, base_dir, columns, max_pixels, content_ids=True)
    reader.check_columns(dataset.column_names)
    columns = reader.columns  # with the detected names
    dataset = _undecoded(dataset)
    text_columns = (
        [columns.text]
        if columns.text in dataset.column_names
        else [columns.instruction, columns.response]
    )
    # Column reads return only these columns: the images stay on disk.
    table = dataset.select_columns(text_columns).to_dict()
    texts = [
        reader.text_of({name: table[name][i] for name in text_columns}, item=i)
        for i in range(len(dataset))
    ]
    media = dataset.select_columns([c for c in (columns.image, columns.audio) if c in dataset.column_names])
    raw_ids = dataset[columns.id] if columns.id in dataset.column_names else [None] * len(dataset)
    ids = [reader.claim_id(raw, i, functools.partial(_content_id, reader, media, texts, i), item=i)
           for i, raw in enumerate(raw_ids)]
    samples = _LazySamples(media, reader, ids, texts)
    return SampleSource(samples, fmt=fmt, path=path)


def _content_id(reader: RecordReader, media: datasets.Dataset, texts: list[str], i: int) -> str:
    row, c = media[i], reader.columns
    ref = reader.image_of(row[c.image], item=i) if c.image in row else reader.audio_of(row[c.audio], item=i)
    return content_id(ref, texts[i])


class _LazySamples(Sequence[Sample]):
    """Samples built on access, so that only the accessed row's image (or clip) is read."""

    def __init__(
        self, media: datasets.Dataset, reader: RecordReader, ids: list[str], texts: list[str]
    ) -> None:
        self._media = media
        self._reader = reader
        self._ids = ids
        self._texts = texts

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]  # no slices
        index = range(len(self))[index]  # negative indices, IndexError
        column = self._reader.columns
        record = {column.text: self._texts[index], **self._media[index]}
        return self._reader.sample(index, record, known_id=self._ids[index], item=index)
