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
* Size limits, checked from the header before decoding: more than ``max_pixels`` pixels
  (default 50 megapixels) is refused with a reason instead of PIL's decompression-bomb
  warning or error, unless ``resize=True``: then the image is decoded (JPEG at a reduced
  scale where possible) and shrunk to at most ``max_pixels`` pixels, aspect ratio kept, with
  Lanczos filtering, and its original size is left in ``image.info["original_size"]``. A
  side shorter than 2 px is refused, and so is a longer side more than ``max_aspect_ratio``
  (default 200, the limit of Qwen2-VL's processor) times the shorter one: processors scale
  the short side up to their input size, so a 300000 x 2 strip would cost gigabytes.
* Only regular files are opened (:func:`mm_align.data.files.open_regular`): a FIFO, a
  device or a folder is a bad sample, never a hang.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mm_align.constants import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, MIN_SIDE
from mm_align.data.errors import BadSampleError
from mm_align.data.files import open_media

#: Where a sample's image comes from: a file, the encoded file content, or a PIL image
#: (only for data sets that hand out decoded images), or None when the record named none.
#: Defined here, beside its reader, so that samples.py imports images.py and never back.
ImageRef = Path | bytes | Image.Image | None

__all__ = ["DEFAULT_MAX_ASPECT_RATIO", "DEFAULT_MAX_PIXELS", "MIN_SIDE", "ImageLimits", "ImageRef", "load_rgb",
           "to_rgb"]



@dataclass(frozen=True)
class ImageLimits:
    """What an image may be (see the module doc): ``max_pixels``, ``max_aspect_ratio`` (longer
    side / shorter side), and ``resize`` (shrink an image over ``max_pixels`` instead of
    refusing it)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    resize: bool = False

# Errors PIL's decoders raise on damaged data (truncation shows up as OSError; some
# plugins raise SyntaxError, ValueError, EOFError or struct.error on garbled headers).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
# Modes whose transparency lives in info["transparency"] (palette index or colour key).
_KEYED_MODES = {"P", "L", "RGB"}
_PLAIN_MODES = {"1", "L", "RGB", "RGBX", "CMYK", "YCbCr", "HSV"}


def load_rgb(ref: ImageRef, *, max_pixels: int = DEFAULT_MAX_PIXELS,
             limits: ImageLimits | None = None) -> Image.Image:
    """Decode ``ref`` (a path, encoded bytes or a PIL image) into a new RGB image.

    ``limits`` (default: ``ImageLimits(max_pixels)``) says what size and shape are accepted.

    Raises:
        BadSampleError: with a reason naming the file, e.g. ``"image file not found: …"``,
            ``"image file is truncated or corrupt: …"``, ``"image is too large: …"``.
    """
    limits = limits or ImageLimits(max_pixels)
    if ref is None:
        raise BadSampleError("no image given for this sample")
    if isinstance(ref, Image.Image):
        return _decode(ref, "in-memory image", limits)
    stream, name = open_media(ref, "image")
    with stream:
        try:
            with warnings.catch_warnings():
                # Our own max_pixels check below replaces PIL's warning.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(stream)
        except Image.DecompressionBombError as err:
            raise BadSampleError(f"image is too large: {name} ({err})") from None
        except UnidentifiedImageError:
            raise BadSampleError(
                f"image file is not a recognised image (corrupt or unsupported format): {name}"
            ) from None
        except _DECODE_ERRORS as err:
            raise BadSampleError(f"image file is truncated or corrupt: {name} ({err})") from None
        with img:
            return _decode(img, name, limits)


def _check_shape(width: int, height: int, name: str, limits: ImageLimits) -> None:
    """Refuse a shape from the header; size last, since resizing cannot mend the others."""
    if min(width, height) < MIN_SIDE:
        raise BadSampleError(
            f"image is too small: {name} is {width} x {height}, a side is under {MIN_SIDE} px"
        )
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        raise BadSampleError(
            f"image aspect ratio is too extreme: {name} is {width} x {height}, more than "
            f"{limits.max_aspect_ratio:g}:1 (crop or pad it, or raise --max-aspect-ratio)"
        )
    if width * height > limits.max_pixels and not limits.resize:
        raise BadSampleError(
            f"image is too large: {name} is {width} x {height} = {width * height} pixels, "
            f"more than the limit of {limits.max_pixels} (raise --max-pixels, or pass "
            "--resize-to-max-pixels to shrink such images)"
        )


def _decode(img: Image.Image, name: str, limits: ImageLimits) -> Image.Image:
    width, height = img.size
    _check_shape(width, height, name, limits)
    shrink = width * height > limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if shrink and img.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale: less memory
                img.draft("RGB", _fit(width, height, limits.max_pixels))
            img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as err:
        raise BadSampleError(f"image is too large to decode, even to resize it: {name} ({err})") from None
    except _DECODE_ERRORS as err:
        raise BadSampleError(f"image file is truncated or corrupt: {name} ({err})") from None
    rgb = to_rgb(img, name)
    if not shrink:
        return rgb
    # From the decoded size: a JPEG draft and the EXIF rotation may have changed it.
    target = _fit(*rgb.size, limits.max_pixels)
    resized = rgb.resize(target, Image.Resampling.LANCZOS) if rgb.size != target else rgb
    resized.info["original_size"] = (width, height)
    return resized


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the same aspect ratio with at most ``max_pixels`` pixels."""
    scale = min(1.0, (max_pixels / (width * height)) ** 0.5)
    return max(1, int(width * scale)), max(1, int(height * scale))


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
