"""Sharded formats read as streams: WebDataset tar shards and parquet files.

Shards are named by a file, a folder (its ``*.tar`` or ``*.parquet`` files in name order), a
glob (``shards/*.tar``) or a brace list (``shards/{00000..00099}.tar``, expanded by
``braceexpand`` in the order written). Nothing is materialised: each pass reads the shards
again, one sample at a time.

* **WebDataset**: tar archives read with the standard library's ``tarfile`` in streaming
  mode; members are grouped into samples by key with the rule of ``datasets``' and
  ``webdataset``'s readers (``dir/000042.jpg`` -> key ``dir/000042``, field ``jpg``). A
  sample's columns are its fields (lower-cased: ``jpg``, ``png``, ``txt``, ``json``...),
  ``__key__`` and ``__url__`` (the shard's name), and, when no field is a caption, the keys of
  its ``json`` member (img2dataset writes ``caption`` there). Its origin is
  ``"<shard> key <key>"``; ``--id-column __key__`` keeps the keys as ids.
* **parquet**: ``pyarrow`` reads a row group at a time; rows are the records (an image
  column of bytes, a ``{"bytes", "path"}`` struct as ``datasets`` writes it, or a path
  relative to the first file's folder). Its origin is ``"<file> row <n>"`` (0-based in the file).

An archive or file that cannot be read is a :class:`~mm_align.data.errors.ManifestError`
naming it (found by the first pass, before anything is scored).
"""

from __future__ import annotations

import glob
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from braceexpand import braceexpand

from mm_align.data.errors import ManifestError
from mm_align.data.rows import TEXT_COLUMNS, Columns, RecordReader
from mm_align.data.source import SampleSource
from mm_align.data.stream import Record, stream_samples

__all__ = ["SHARD_SUFFIXES", "expand_shards", "open_shards", "shard_format"]

#: Format -> the file suffixes of its shards.
SHARD_SUFFIXES = {"webdataset": (".tar",), "parquet": (".parquet",)}
_GLOB_CHARS = set("*?[{")


def expand_shards(spec: str | Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The shard files ``spec`` names (see the module doc), in reading order.

    Raises:
        ManifestError: ``spec`` names no shard, or a listed shard does not exist.
    """
    path = Path(spec)
    if path.is_dir():
        shards = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    elif path.is_file():
        shards = [path]
    else:
        shards = []
        for pattern in braceexpand(str(spec)):
            found = sorted(glob.glob(pattern)) if set(pattern) & _GLOB_CHARS else [pattern]
            shards += [Path(p) for p in found]
        missing = [str(p) for p in shards if not p.is_file()]
        if missing:
            raise ManifestError(spec, f"{len(missing)} listed shard(s) do not exist, e.g. {missing[0]}")
    if not shards:
        raise ManifestError(spec, f"no {' or '.join(suffixes)} shards here")
    return shards


def shard_format(spec: str | Path) -> str | None:
    """The sharded format ``spec`` names: a ``.tar`` or ``.parquet`` file, a glob or brace
    list of them, or a folder holding them (WebDataset first); else None."""
    path = Path(spec)
    names = [p.name for p in path.iterdir()] if path.is_dir() else [str(spec)]
    for fmt, suffixes in SHARD_SUFFIXES.items():
        if any(n.lower().endswith(suffixes) for n in names):
            return fmt
    return None


def open_shards(spec: str | Path, fmt: str, *, columns: Columns, max_pixels: int) -> SampleSource:
    """WebDataset shards or parquet files as a stream of samples (ids from content unless
    an id column is named or present)."""
    shards = expand_shards(spec, SHARD_SUFFIXES[fmt])
    records = webdataset_records if fmt == "webdataset" else parquet_records

    def samples() -> Iterator:
        reader = RecordReader(spec, shards[0].parent, columns, max_pixels, content_ids=True)
        return stream_samples(reader, (r for shard in shards for r in records(shard)))

    return SampleSource(samples, fmt=fmt, path=spec)


def webdataset_records(shard: Path) -> Iterator[Record]:
    """The samples of one tar shard, as records (see the module doc)."""
    key: str | None = None
    fields: dict[str, Any] = {}
    try:
        with tarfile.open(shard, mode="r|*") as tar:  # streaming: members in archive order
            for member in tar:
                name = _split_key(member.name) if member.isfile() else None
                if name is None:
                    continue
                if name[0] != key and fields:
                    yield _wds_record(shard, key, fields)
                    fields = {}
                key = name[0]
                fields[name[1]] = tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as err:
        after = f" after key {key!r}" if key else ""
        raise ManifestError(shard, f"unreadable tar archive{after}: {err}") from None
    if fields:
        yield _wds_record(shard, key, fields)


def _split_key(name: str) -> tuple[str, str] | None:
    """``("dir/000042", "jpg")`` for ``dir/000042.jpg``: the key ends at the first dot of the
    file name (WebDataset's rule, as in ``datasets``' builder)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem, ext.lower()) if dot and stem else None


def _wds_record(shard: Path, key: str | None, fields: dict[str, Any]) -> Record:
    origin = f"{shard.name} key {key}"
    record: dict[str, Any] = {"__key__": key, "__url__": shard.name}
    if "json" in fields and not any(name in fields for name in TEXT_COLUMNS):
        try:
            meta = json.loads(fields["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return origin, f"'json' member is not valid JSON ({err})"
        if isinstance(meta, dict):
            record.update(meta)
    return origin, {**record, **fields}


def parquet_records(path: Path) -> Iterator[Record]:
    """The rows of one parquet file, as records, a row group at a time."""
    import pyarrow.parquet as pq

    row = 0
    try:
        with pq.ParquetFile(path) as table:
            for batch in table.iter_batches(batch_size=256):
                for record in batch.to_pylist():
                    yield f"{path.name} row {row}", record
                    row += 1
    except (OSError, ValueError) as err:  # pyarrow's ArrowIOError / ArrowInvalid
        raise ManifestError(path, f"unreadable parquet file at row {row}: {err}") from None
