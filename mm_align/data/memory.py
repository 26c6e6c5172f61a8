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
from mm_align.data.samples import Sample
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
        if several:
            samples.append(Sample(str(index), index, text, None, max_pixels, images=tuple(image)))
        else:
            samples.append(Sample(str(index), index, text, image, max_pixels))
    return SampleSource(samples, fmt="pairs", path=IN_MEMORY)


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
