"""Decode one audio clip to the waveform an audio-language model takes: mono float32 samples
at the model's rate.

One decoder for every container and codec: PyAV (FFmpeg's libraries, already installed with
torchvision), which reads wav, flac, mp3, ogg/vorbis, opus, m4a/aac and more, and whose
resampler (libswresample) downmixes to mono and converts the rate in the same step. A clip is
decoded frame by frame, so a limit (:class:`AudioLimits`) stops the decoding of a long file
early instead of loading it whole.

Every failure is a :class:`~mm_align.data.errors.BadSampleError` with its reason: no file,
not audio, an unsupported codec, an empty clip, a clip longer than the limit.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mm_align.data.errors import BadSampleError

__all__ = ["AUDIO_OVERFLOWS", "AudioLimits", "AudioRef", "load_waveform"]

#: Where a sample's audio comes from: a file, the encoded file content, or None when the
#: record named none.
AudioRef = Path | bytes | None

#: What a clip longer than ``max_seconds`` gets: refused (a bad sample) or cut to its start.
AUDIO_OVERFLOWS = ("refuse", "truncate")


@dataclass(frozen=True)
class AudioLimits:
    """How clips are decoded: at ``sampling_rate`` Hz (the model's), and what happens to one
    longer than ``max_seconds`` (None: no limit): ``overflow`` = ``"refuse"`` or
    ``"truncate"``."""

    sampling_rate: int
    max_seconds: float | None = None
    overflow: str = "refuse"

    def __post_init__(self) -> None:
        if self.sampling_rate < 1:
            raise ValueError(f"sampling_rate must be >= 1, got {self.sampling_rate}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.overflow not in AUDIO_OVERFLOWS:
            raise ValueError(f"overflow must be one of {list(AUDIO_OVERFLOWS)}, not {self.overflow!r}")

    @property
    def max_samples(self) -> int | None:
        return None if self.max_seconds is None else round(self.max_seconds * self.sampling_rate)


def load_waveform(ref: AudioRef, limits: AudioLimits) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode ``ref`` to a mono float32 waveform (``(samples,)``, in [-1, 1]) at
    ``limits.sampling_rate``, and the notes for its result record: ``audio_seconds`` (the
    duration scored) and, for a clip cut to ``max_seconds``, ``audio_truncated`` = True.

    Raises:
        BadSampleError: no audio given, the file is missing or unreadable, it holds no audio
            stream or an unsupported codec, the clip is empty, or it is longer than
            ``max_seconds`` under ``overflow="refuse"``.
    """
    import av  # PyAV: imported here, so that `import mm_align.data` stays light

    if ref is None:
        raise BadSampleError("no audio given for this sample")
    if isinstance(ref, Path) and not ref.is_file():
        raise BadSampleError(f"audio file not found: {ref}")
    if len(ref) == 0 if isinstance(ref, bytes) else ref.stat().st_size == 0:
        raise BadSampleError("the audio file is empty (0 bytes)")
    source = io.BytesIO(ref) if isinstance(ref, bytes) else str(ref)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                raise BadSampleError("the file holds no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None or stream.codec_context.codec is None:
                raise BadSampleError("unsupported audio codec")
            wave, cut = _decode(container, stream, limits)
    except BadSampleError:
        raise
    except av.error.DecoderNotFoundError as exc:
        raise BadSampleError(f"unsupported audio codec ({exc})") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadSampleError(f"unreadable audio ({type(exc).__name__}: {exc})") from None
    if wave.size == 0:
        raise BadSampleError("the audio clip is empty (0 samples)")
    notes: dict[str, Any] = {"audio_seconds": round(wave.size / limits.sampling_rate, 4)}
    if cut:
        notes["audio_truncated"] = True
    return wave, notes


def _decode(container: Any, stream: Any, limits: AudioLimits) -> tuple[np.ndarray, bool]:
    """The stream's samples, mono at the target rate, and whether they were cut; decoding
    stops as soon as the limit is passed."""
    limit = limits.max_samples
    chunks: list[np.ndarray] = []
    total = 0
    for chunk in _resampled(container, stream, limits.sampling_rate):
        chunks.append(chunk)
        total += chunk.size
        if limit is not None and total > limit:
            if limits.overflow == "refuse":
                raise BadSampleError(
                    f"the clip is longer than --max-audio-seconds {limits.max_seconds:g} "
                    "(use --audio-overflow truncate to score its start)"
                )
            return np.concatenate(chunks)[:limit], True
    wave = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return wave, False


def _resampled(container: Any, stream: Any, rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks at ``rate`` of the decoded stream, the resampler flushed at the end."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1)
