"""Video clips: a file (mp4, webm, mkv, gif, ...) decoded with PyAV, or a folder of frames,
sampled to the frames a model sees, or a :class:`~mm_align.data.errors.BadSampleError`.

Decisions (the model sees exactly these frames, so they are part of the method):

* Sampling follows transformers' ``default_sample_indices_fn``: ``num_frames`` frames at
  ``arange(n) * total // n`` (evenly spread, the first frame included); with ``fps`` instead,
  ``n = max(1, int(total / source_fps * fps))``. More frames than ``max_frames`` are spread
  the same way over ``max_frames``; a clip with fewer frames than asked gives all of them.
* A folder of frames (image files in natural name order: ``frame_2`` before ``frame_10``)
  is taken as already sampled: ``fps`` keeps every frame (up to ``max_frames``) and its
  frame rate is ``fps``; ``num_frames`` spreads as for a file. Every frame must have the
  same size.
* Frames are RGB; a frame over the image limits' ``max_pixels`` is refused, or shrunk with
  ``resize`` (aspect kept), as an image would be.
* A file PyAV cannot open or decode, a file without a video stream, and a clip with no
  frames are the sample's error, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mm_align.data.errors import BadSampleError
from mm_align.data.files import open_media
from mm_align.data.images import ImageLimits, _check_shape, _fit, load_rgb

__all__ = ["VIDEO_SUFFIXES", "FrameSampling", "Video", "VideoRef", "is_video_path", "load_video"]

#: File names read as video clips (a folder is a clip of frames).
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".gif", ".mov", ".avi", ".m4v")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: Where a sample's video comes from: a file or a folder of frames, or the encoded bytes.
VideoRef = Path | bytes


def is_video_path(path: Path) -> bool:
    """Whether ``path`` names a clip by its suffix (``.mp4``, ``.gif``, ...)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a clip the model sees: ``num_frames`` evenly spread, or ``fps`` frames
    per second of the clip (one of the two), at most ``max_frames``."""

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int = 768

    def __post_init__(self) -> None:
        if (self.num_frames is None) == (self.fps is None):
            raise ValueError(f"give num_frames or fps, not both nor neither ({self})")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")

    def count(self, total: int, source_fps: float | None) -> int:
        """How many of ``total`` frames to take (``source_fps`` None: frames already sampled)."""
        if self.num_frames is not None:
            wanted = self.num_frames
        elif source_fps:
            wanted = max(1, int(total / source_fps * self.fps))  # type: ignore[operator]
        else:
            wanted = total
        return min(wanted, total, self.max_frames)

    def indices(self, total: int, source_fps: float | None) -> np.ndarray:
        """The frame numbers to keep, ascending (transformers' uniform rule)."""
        n = self.count(total, source_fps)
        return np.arange(n, dtype=np.int64) * total // n


@dataclass(frozen=True, eq=False)
class Video:
    """A decoded clip: ``frames`` (T x H x W x 3, uint8 RGB), the clip's frame rate
    (``fps``, None when unknown), which source frames were kept and how many it had."""

    frames: np.ndarray = field(repr=False)
    fps: float | None
    indices: tuple[int, ...]
    total_frames: int
    name: str = ""

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def metadata(self) -> dict[str, Any]:
        """The fields of transformers' ``VideoMetadata`` (for processors that print
        timestamps, as Qwen3-VL does)."""
        height, width = self.frames.shape[1:3]
        return {"total_num_frames": self.total_frames, "fps": self.fps, "width": width, "height": height,
                "duration": self.total_frames / self.fps if self.fps else None,
                "frames_indices": list(self.indices)}


def load_video(ref: VideoRef, sampling: FrameSampling, limits: ImageLimits | None = None) -> Video:
    """Decode the frames of ``ref`` that ``sampling`` picks (see the module doc).

    Raises:
        BadSampleError: the clip is missing, unreadable, has no frames, or a frame breaks
            ``limits``.
    """
    limits = limits or ImageLimits()
    if isinstance(ref, Path) and ref.is_dir():
        return _load_folder(ref, sampling, limits)
    stream, name = open_media(ref, "video", " or a folder")
    with stream:
        return _decode(stream, name, sampling, limits)


def _decode(stream: Any, name: str, sampling: FrameSampling, limits: ImageLimits) -> Video:
    import av  # PyAV: only a run with video needs it

    try:
        with av.open(stream) as container:
            if not container.streams.video:
                raise BadSampleError(f"video file has no video stream (no frames): {name}")
            video = container.streams.video[0]
            rate = float(video.average_rate) if video.average_rate else None
            total = sum(1 for _ in _frames(container)) if not video.frames else int(video.frames)
            if total == 0:
                raise BadSampleError(f"video has no frames (zero length): {name}")
            wanted = sampling.indices(total, rate)
            container.seek(0)
            frames = [_rgb(frame, name, limits) for frame in _pick(_frames(container), wanted)]
    except av.EOFError:  # the container ends before any frame (FFmpeg's probe fails too)
        raise BadSampleError(f"video has no frames (zero length): {name}") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, BadSampleError):
            raise
        why = getattr(err, "strerror", None) or err  # PyAV's str() names the file descriptor
        raise BadSampleError(f"video file is not a readable video (corrupt or unsupported format): "
                             f"{name} ({why})") from None
    if not frames:
        raise BadSampleError(f"video has no frames (zero length): {name}")
    # A frame count from the header can exceed what decodes (a cut file): keep what decoded.
    return Video(np.stack(frames), rate, tuple(int(i) for i in wanted[: len(frames)]), total, name)


def _frames(container: Any) -> Iterator[Any]:
    """The decoded frames; a stream that ends before its first frame simply has none."""
    import av

    try:
        yield from container.decode(video=0)
    except av.EOFError:
        return


def _pick(frames: Iterator[Any], wanted: np.ndarray) -> Iterator[Any]:
    """The frames at the ascending positions ``wanted``, decoding no further than the last."""
    keep = set(wanted.tolist())
    last = int(wanted[-1])
    for index, frame in enumerate(frames):
        if index in keep:
            yield frame
        if index >= last:
            return


def _rgb(frame: Any, name: str, limits: ImageLimits) -> np.ndarray:
    """One decoded frame as H x W x 3 uint8, shrunk to the pixel limit when allowed."""
    width, height = frame.width, frame.height
    _check_shape(width, height, f"a frame of {name}", limits)
    if width * height > limits.max_pixels:
        width, height = _fit(width, height, limits.max_pixels)
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _load_folder(folder: Path, sampling: FrameSampling, limits: ImageLimits) -> Video:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=_natural)
    if not files:
        raise BadSampleError(f"video folder has no frames (image files): {folder}")
    wanted = sampling.indices(len(files), None)
    frames = [np.asarray(load_rgb(files[i], limits=limits)) for i in wanted]
    sizes = {frame.shape for frame in frames}
    if len(sizes) > 1:
        raise BadSampleError(f"the frames of {folder} differ in size: {sorted(s[:2] for s in sizes)}")
    return Video(np.stack(frames), sampling.fps, tuple(int(i) for i in wanted), len(files), str(folder))
