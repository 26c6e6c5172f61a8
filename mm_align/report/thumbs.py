"""Small embedded thumbnails of sample images."""

from __future__ import annotations

import base64
import io
from pathlib import Path

__all__ = ["thumbnail_data_uri"]


def thumbnail_data_uri(path: str | Path | None, size: int = 96) -> str | None:
    """The image at ``path``, upright as its EXIF orientation says, shrunk to fit ``size`` x
    ``size``, as a JPEG ``data:`` URI.

    Returns None when there is no path, the file is gone or is not a readable image: a
    report must still be written for a run whose images were moved or deleted since.
    """
    if not path:
        return None
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            # cameras store portrait photos as landscape pixels plus an orientation tag
            im = ImageOps.exif_transpose(opened).convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
