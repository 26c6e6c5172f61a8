"""Short video clips made from the bundled photos (data/sample), encoded with PyAV by the
tests themselves: a camera pan across a photo, so that the frames differ as in a real clip."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.helpers import SAMPLE

CODECS = {".mp4": "libx264", ".webm": "libvpx", ".mkv": "ffv1", ".gif": "gif"}


def pan(photo: str, n_frames: int = 8, size: tuple[int, int] = (112, 84)) -> list[Image.Image]:
    """``n_frames`` crops of ``data/sample/<photo>.jpg`` (``size`` = w x h) sliding from its left
    edge to its right edge, i.e. a horizontal pan."""
    image = Image.open(SAMPLE / f"{photo}.jpg").convert("RGB")
    scale = size[1] / image.height
    wide = image.resize((max(size[0] + n_frames, round(image.width * scale * 1.6)), size[1]))
    lefts = np.linspace(0, wide.width - size[0], n_frames).round().astype(int)
    return [wide.crop((int(x), 0, int(x) + size[0], size[1])) for x in lefts]


def write_clip(frames: list[Image.Image], path: Path, fps: int = 4) -> Path:
    """Encode ``frames`` into ``path``; the codec follows the suffix (mp4: H.264, webm: VP8,
    mkv: FFV1, gif)."""
    codec = CODECS[path.suffix]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = {"gif": "rgb8", "ffv1": "yuv444p"}.get(codec, "yuv420p")
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pan_clip(photo: str, path: Path, n_frames: int = 8, size: tuple[int, int] = (112, 84), fps: int = 4) -> Path:
    """A clip of :func:`pan` written to ``path``."""
    return write_clip(pan(photo, n_frames, size), path, fps)
