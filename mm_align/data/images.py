"""Robust image decoding: any file PIL can read becomes a fully decoded RGB image, or a
:class:`~mm_align.data.errors.BadSampleError` with a specific reason.

Decisions (the model sees exactly what this module returns, so they are part of the
method):

* The whole image is decoded (``Image.load()``) so that a truncated file fails here, with
  a reason, and not later inside a model processor. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
  never enabled: a half-grey image would silently distort the measurement.
* The EXIF orientation is applied (``ImageOps.exif_transpose``), so the model sees the
  photo the way a viewer shows it.
* Transparency (RGBA, LA, PA, palette or colour-key transparency) is composited over a
  WHITE background; dropping the alpha channel instead would show whatever colours happen
  to be stored under transparent pixels.
* 16-bit integer images (``I;16*``, and ``I`` when every value fits in 0..65535) are
  scaled to 8 bit with ``round(v * 255 / 65535)`` (65535 -> 255, 32768 -> 128), never
  clipped. ``I`` images with negative or larger values, and float (``F``) images outside
  [0, 1], are min-max stretched to 0..255; ``F`` images inside [0, 1] are multiplied by
  255. The grey result is replicated to three channels.
* CMYK and YCbCr use PIL's conversion. Embedded ICC profiles are ignored, as in the
  models' own preprocessing (Hugging Face processors call ``convert("RGB")``).
* Multi-frame files (GIF, TIFF) contribute their first frame.
* Size limits: more than ``max_pixels`` pixels (default 50 megapixels) is refused from the
  header, before decoding, with a reason instead of PIL's decompression-bomb warning or
  error; a side shorter than 2 px is refused too. Aspect ratios are left to the model's
  processor.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mm_align.data.errors import BadSampleError

if TYPE_CHECKING:
    from mm_align.data.samples import ImageRef

__all__ = ["DEFAULT_MAX_PIXELS", "MIN_SIDE", "load_rgb", "to_rgb"]

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 2

# Errors PIL's decoders raise on damaged data (truncation shows up as OSError; some
# plugins raise SyntaxError, ValueError, EOFError or struct.error on garbled headers).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Modes whose transparency lives in info["transparency"] (palette index or colour key).
_KEYED_MODES = {"P", "L", "RGB"}
_PLAIN_MODES = {"1", "L", "RGB", "RGBX", "CMYK", "YCbCr", "HSV"}


def load_rgb(ref: ImageRef, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``ref`` (a path, encoded bytes or a PIL image) into a new RGB image.

    Raises:
        BadSampleError: with a reason naming the file, e.g. ``"image file not found: …"``,
            ``"image file is truncated or corrupt: …"``, ``"image is too large: …"``.
    """
    if isinstance(ref, Image.Image):
        return _decode(ref, "in-memory image", max_pixels)
    name = str(ref) if isinstance(ref, Path) else f"<{len(ref)} bytes>"
    stream = ref if isinstance(ref, Path) else io.BytesIO(ref)
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(stream)
    except FileNotFoundError:
        raise BadSampleError(f"image file not found: {name}") from None
    except Image.DecompressionBombError as err:
        raise BadSampleError(f"image is too large: {name} ({err})") from None
    except UnidentifiedImageError:
        raise BadSampleError(
            f"image file is not a recognised image (corrupt or unsupported format): {name}"
        ) from None
    except (IsADirectoryError, PermissionError) as err:
        raise BadSampleError(f"image file could not be read: {name} ({err.strerror})") from None
    except _DECODE_ERRORS as err:
        raise BadSampleError(f"image file is truncated or corrupt: {name} ({err})") from None
    with img:
        return _decode(img, name, max_pixels)


def _decode(img: Image.Image, name: str, max_pixels: int) -> Image.Image:
    width, height = img.size
    if width * height > max_pixels:
        raise BadSampleError(
            f"image is too large: {name} is {width} x {height} = {width * height} pixels, "
            f"more than the limit of {max_pixels}"
        )
    if min(width, height) < MIN_SIDE:
        raise BadSampleError(
            f"image is too small: {name} is {width} x {height}, a side is under {MIN_SIDE} px"
        )
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS as err:
        raise BadSampleError(f"image file is truncated or corrupt: {name} ({err})") from None
    return to_rgb(img, name)


def to_rgb(img: Image.Image, name: str = "image") -> Image.Image:
    """Convert a decoded image of any mode to a new RGB image (rules in the module doc)."""
    mode = img.mode
    if mode in _ALPHA_MODES or (mode in _KEYED_MODES and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _PLAIN_MODES or mode == "P":
        return img.convert("RGB")
    if mode == "F" or mode.startswith("I"):
        return Image.fromarray(_to_uint8(np.asarray(img)), "L").convert("RGB")
    raise BadSampleError(f"unsupported image mode {mode}: {name}")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Map one channel of wide integer or float data to uint8 (rules in the module doc)."""
    a = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if np.issubdtype(values.dtype, np.floating):
        in_range = lo >= 0.0 and hi <= 1.0
        full_scale = 1.0
    else:
        in_range = lo >= 0 and hi <= 65535
        full_scale = 65535.0
    if in_range:
        scaled = a * (255.0 / full_scale)
    elif hi > lo:
        scaled = (a - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(a)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
