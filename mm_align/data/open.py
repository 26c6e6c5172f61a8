"""``open_dataset``: one entry point for every supported layout, with auto-detection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mm_align.data.errors import ManifestError
from mm_align.data.hf import open_hub, open_saved
from mm_align.data.images import DEFAULT_MAX_PIXELS
from mm_align.data.manifest import IMAGEFOLDER_METADATA, open_imagefolder, open_manifest
from mm_align.data.paper import CC_SBU_ANNOTATIONS, open_cc_sbu_align, open_detail_23k
from mm_align.data.rows import Columns
from mm_align.data.shards import open_shards, shard_format
from mm_align.data.source import SampleSource

__all__ = ["FORMATS", "detect_format", "open_dataset"]

#: Format names accepted by ``open_dataset(fmt=...)``, with what they read.
FORMATS = {
    "jsonl": "JSONL manifest: image, text (or instruction + response), optional id; also a "
             "folder holding one manifest of any name",
    "csv": "CSV manifest with the same columns (e.g. filename,caption)",
    "imagefolder": "folder with metadata.jsonl or metadata.csv (file_name, text, optional id)",
    "parquet": "parquet file(s): a file, folder, glob or brace list; image bytes or paths",
    "webdataset": "WebDataset tar shard(s): a file, folder, glob or brace list "
                  "(shards/{00000..00099}.tar); jpg/png/webp + txt/caption/json members",
    "save_to_disk": "folder written by datasets' save_to_disk (Dataset or DatasetDict)",
    "hub": "Hugging Face hub data set name, via datasets.load_dataset (--streaming to stream it)",
    "detail_23k": "LLaVA detail_23k.json (needs image_root = COCO train2017 folder)",
    "cc_sbu_align": "MiniGPT-4 cc_sbu_align folder (filter_cap.json + image/)",
}

_SAVE_TO_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_MANIFEST_SUFFIXES = (".jsonl", ".csv")
_HUB_NAME = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_PEEK_BYTES = 1 << 16


def open_dataset(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    image_column: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    split: str | None = None,
    fmt: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    streaming: bool = False,
) -> SampleSource:
    """Open an image-text data set as a streaming :class:`SampleSource`.

    Args:
        path: a manifest file, a data set folder, or a hub data set name.
        image_root: folder for relative image paths (default: the manifest's folder;
            required for detail_23k; replaces ``image/`` for cc_sbu_align).
        image_column: image column name, in every format (default: detected among
            :data:`~mm_align.data.rows.IMAGE_COLUMNS`; ``file_name`` for imagefolder).
        text_column: text column name, in every format (default: detected among
            :data:`~mm_align.data.rows.TEXT_COLUMNS`, else instruction + response).
        id_column: id column name, in every format (default ``id`` when present, else ids
            derived from the content, :mod:`~mm_align.data.content`; ``__key__`` keeps
            WebDataset keys).
        split: split of a ``DatasetDict``, a hub data set (default ``train``) or an
            imagefolder with one sub-folder per split.
        fmt: one of :data:`FORMATS`, or ``"auto"`` to detect it (see :func:`detect_format`).
        max_pixels: larger images are reported as bad samples instead of being decoded.
        streaming: stream a hub data set instead of downloading it (parquet and WebDataset
            are always read as streams).

    Raises:
        ManifestError: the data set description is malformed (with file and line) or its
            format cannot be recognised.
        ValueError: ``fmt`` is unknown, or ``image_root`` is not a folder (checked here
            because otherwise every sample would fail on its own, one by one).
    """
    if image_root is not None and not Path(image_root).is_dir():
        raise ValueError(f"image_root is not a folder: {image_root}")
    if fmt == "auto":
        fmt = detect_format(path, split=split)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")
    if fmt == "imagefolder" and split is not None and (Path(path) / split).is_dir():
        path = Path(path) / split
    common: dict[str, Any] = {"image_root": image_root, "max_pixels": max_pixels}
    if fmt == "imagefolder":
        columns = Columns(image="file_name").with_overrides(image_column, text_column, id_column)
        return open_imagefolder(path, columns=columns, **common)
    columns = Columns().with_overrides(image_column, text_column, id_column)
    if fmt in ("jsonl", "csv"):
        return open_manifest(_single_manifest(path) if Path(path).is_dir() else path,
                             columns=columns, fmt=fmt, **common)
    if fmt in ("parquet", "webdataset"):
        return open_shards(path, fmt, columns=columns, max_pixels=max_pixels)
    if fmt == "save_to_disk":
        return open_saved(path, split=split, columns=columns, **common)
    if fmt == "hub":
        return open_hub(str(path), split=split, columns=columns, streaming=streaming, **common)
    if fmt == "detail_23k":
        return open_detail_23k(path, **common)
    return open_cc_sbu_align(path, **common)


def detect_format(path: str | Path, *, split: str | None = None) -> str:
    """Guess the format of ``path`` from its name, its folder content or its first bytes.

    Folders: ``metadata.jsonl``/``metadata.csv`` -> imagefolder (also inside the ``split``
    sub-folder); ``filter_cap.json`` -> cc_sbu_align; ``dataset_info.json``,
    ``state.json`` or ``dataset_dict.json`` -> save_to_disk; ``.tar`` files -> webdataset;
    ``.parquet`` files -> parquet; one ``.jsonl`` or ``.csv`` file of any name -> that
    manifest. Files: ``.jsonl`` and ``.csv`` -> manifests; ``.parquet``; ``.tar`` ->
    webdataset; ``.json`` -> detail_23k (a list of records with "conversations") or
    cc_sbu_align (an object with "annotations"). A glob or brace list of ``.tar`` or
    ``.parquet`` files -> those shards. A name like ``owner/name`` that is not on disk -> hub.
    """
    p = Path(path)
    if p.is_dir():
        for folder in (p, p / split) if split else (p,):
            if any((folder / name).is_file() for name in IMAGEFOLDER_METADATA):
                return "imagefolder"
        if (p / CC_SBU_ANNOTATIONS).is_file():
            return "cc_sbu_align"
        if any((p / name).is_file() for name in _SAVE_TO_DISK_MARKERS):
            return "save_to_disk"
        if fmt := shard_format(p):
            return fmt
        if _manifests(p):
            return _single_manifest(p).suffix[1:].lower()
    elif p.is_file():
        suffix = p.suffix.lower()
        if suffix in _MANIFEST_SUFFIXES:
            return suffix[1:]
        if fmt := shard_format(p):
            return fmt
        if suffix == ".json":
            with open(p, encoding="utf-8", errors="replace") as f:
                head = f.read(_PEEK_BYTES).lstrip()
            if head.startswith("[") and '"conversations"' in head:
                return "detail_23k"
            if head.startswith("{") and '"annotations"' in head:
                return "cc_sbu_align"
    elif p.exists():  # a FIFO or a device: never opened, it could block forever
        raise ManifestError(path, "not a regular file or a folder")
    elif _HUB_NAME.match(str(path)) and not p.suffix:
        return "hub"
    elif (fmt := shard_format(p)) and set(str(path)) & set("*?[{"):
        return fmt
    else:
        raise ManifestError(path, "no such file or folder")
    raise ManifestError(path, "unrecognised data set layout; supported:\n" + _supported())


def _manifests(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in _MANIFEST_SUFFIXES and f.is_file())


def _single_manifest(folder: str | Path) -> Path:
    """The one CSV or JSONL manifest of ``folder`` (image paths are relative to it)."""
    found = _manifests(Path(folder))
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or "none"
        raise ManifestError(folder, f"expected one .csv or .jsonl manifest in this folder, found {names}; "
                                    "pass the manifest itself as --data")
    return found[0]


def _supported() -> str:
    return "\n".join(f"  {name}: {what}" for name, what in FORMATS.items())
