"""Data sets already in memory, for the Python API: a ``datasets.Dataset`` or an iterable of
``(PIL.Image, text)`` pairs (ids are then the positions, ``"0"``, ``"1"``, ...); a list of
images in place of the image is a sample of several images."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from mm_align.data.errors import ManifestError
from mm_align.data.images import DEFAULT_MAX_PIXELS
from mm_align.data.rows import Columns
from mm_align.data.samples import Sample, unicode_checked
from mm_align.data.source import SampleSource

__all__ = ["open_memory"]

IN_MEMORY = "<in memory>"


def _pairs(data: Iterable[Any], max_pixels: int) -> SampleSource:
    samples = []
    for index, item in enumerate(data):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise ManifestError(IN_MEMORY, f"item {index}: expected an (image, text) pair, got {type(item).__name__}")
        image, text = item
        several = isinstance(image, list | tuple) and bool(image)
        if not all(isinstance(one, Image.Image) for one in (image if several else [image])) or not isinstance(text, str):
            raise ManifestError(
                IN_MEMORY,
                f"item {index}: expected (PIL.Image or a list of them, str), got ({type(image).__name__}, "
                f"{type(text).__name__})",
            )
        listed = tuple(image) if several else (image,)
        problem = next((why for one in listed if (why := _unreadable(one, index))), None)
        kept = () if problem else listed
        media = {"images": kept, "image": None} if several else {"image": kept[0] if kept else None}
        sample = Sample(str(index), index, text, max_pixels=max_pixels, problem=problem, **media)
        samples.append(unicode_checked(sample, f"item {index}"))
    return SampleSource(samples, fmt="pairs", path=IN_MEMORY)


def _unreadable(image: Image.Image, index: int) -> str | None:
    """Why pair ``index``'s image cannot be read (closed, or its pixels fail to load), checked
    before the data set is hashed; None when it can. That pair alone is then a bad sample."""
    try:
        image.load()
    except (ValueError, OSError) as err:  # a closed image raises ValueError
        return f"item {index}: the image cannot be read ({type(err).__name__}: {err})"
    return None


def open_memory(
    data: Any,
    *,
    image_column: str | None = None,
    text_column: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> SampleSource:
    """A :class:`SampleSource` over ``data``: a ``datasets.Dataset`` (columns as for saved
    data sets) or an iterable of ``(PIL.Image, str)`` pairs.

    Raises:
        ManifestError: an item is not an (image, text) pair, or a column is missing.
    """
    import datasets  # heavy: only when data are handed over in memory

    if isinstance(data, datasets.Dataset):
        from mm_align.data.hf import from_dataset

        columns = Columns().with_overrides(image_column, text_column)
        return from_dataset(data, IN_MEMORY, "dataset", columns, Path("."), max_pixels)
    return _pairs(data, max_pixels)
