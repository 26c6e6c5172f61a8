"""The :class:`Sample` type: one image-text pair (or several images, a video clip or an
audio clip, with a text), nothing decoded yet.

A sample is cheap: an id, a position, a text and a *reference* to its image (a file path,
the encoded bytes, or an in-memory PIL image). Nothing is decoded until
:meth:`Sample.load_image` is called, so a source of thousands of samples can be listed
and iterated without touching a single image file.

A sample with a blank text or a bad image is still produced by the iteration; its
:meth:`Sample.check_text` / :meth:`Sample.load_image` raise
:class:`~mm_align.data.errors.BadSampleError`, so one bad record never stops a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mm_align.data.audio import AudioLimits, AudioRef, load_waveform
from mm_align.data.errors import BadSampleError
from mm_align.data.images import DEFAULT_MAX_PIXELS, ImageLimits, ImageRef, load_rgb
from mm_align.data.video import FrameSampling, Video, VideoRef, load_video

__all__ = [
    "MODALITIES",
    "ImageRef",
    "Sample",
    "Visual",
    "join_instruction_response",
    "unicode_checked",
    "unicode_problem",
]

#: What a sample gives the model besides its text: one image, several images (in order), a
#: video clip, or an audio clip (for an audio-language model).
MODALITIES = ("image", "images", "video", "audio")

#: A sample's decoded visual input, one per modality: an image, a list of images, a video.
Visual = Image.Image | list[Image.Image] | Video

def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate, e.g. from a JSON ``"\\ud800"``
    escape), or None when it can; the first bad character is named by its 1-based position.

    >>> unicode_problem("fine") is None
    True
    >>> unicode_problem("a" + chr(0xD800) + "b")
    'a lone surrogate U+D800 at character 2 (not valid Unicode)'
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"a lone surrogate U+{ord(text[err.start]):04X} at character {err.start + 1} (not valid Unicode)"
    return None


def unicode_checked(sample: Sample, where: str | None) -> Sample:
    """``sample``, or, when its id or text is not valid Unicode, a copy whose ``problem`` says
    so at ``where`` (``"line 3"``, ``"item 2"``) and whose id is backslash-escaped
    (``"a\\udfff"``), so that the bad sample can be recorded and the run goes on."""
    for part in ("id", "text"):
        why = unicode_problem(getattr(sample, part))
        if why is not None and sample.problem is None:
            escaped = sample.id.encode("utf-8", "backslashreplace").decode("utf-8")
            place = f"{where}: " if where else ""
            return dataclasses.replace(sample, id=escaped, problem=f"{place}the {part} holds {why}")
    return sample



def join_instruction_response(instruction: str, response: str) -> str:
    """The text of an instruction-following sample, as the paper feeds it to the LLM.

    The paper concatenates instruction and response; here both are stripped and joined by
    one newline. When one of them is empty the other is returned alone (no dangling
    newline); when both are, the result is empty and the sample is reported as bad.
    """
    parts = [p.strip() for p in (instruction, response)]
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)  # slots: a manifest holds one per pair
class Sample:
    """One image-text pair of a data set.

    Attributes:
        id: the record's id (derived from the content, or the position as a string, when the
            data set gives none: :mod:`~mm_align.data.rows`).
        index: 0-based position of the sample in its source.
        text: the text as given (for instruction data, see
            :func:`join_instruction_response`). It may be empty: call
            :meth:`check_text` (or :meth:`load`) to have that reported as a bad sample.
        image: where the image comes from (see :data:`ImageRef`).
        max_pixels: images with more pixels than this are rejected by :meth:`load_image`.
        origin: where a sample of a stream or shard came from, for error records and
            results (``"shard-00000.tar key 000042"``, ``"pairs.parquet row 17"``), or None.
        images: several images, in order (then ``image`` is None).
        video: a video clip, a file or a folder of frames (then ``image`` is None).
        audio: an audio clip (a data set with an ``audio`` column), or None.
    """

    id: str
    index: int
    text: str
    image: ImageRef = field(repr=False)
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, repr=False, compare=False)
    origin: str | None = field(default=None, repr=False, compare=False)
    problem: str | None = field(default=None, repr=False, compare=False)
    """Why a stream's record could not be read (a member that is not UTF-8, a cell of the
    wrong type); such a sample fails :meth:`check_text` with this reason."""
    images: tuple[ImageRef, ...] = field(default=(), repr=False)
    video: VideoRef | None = field(default=None, repr=False)
    audio: AudioRef = field(default=None, repr=False)
    """Where the sample's audio comes from (a data set with an ``audio`` column), or None."""

    @property
    def modality(self) -> str:
        """``"video"``, ``"images"`` (an ``images`` list), ``"image"``, or ``"audio"`` (an
        audio clip and no image: a sample for an audio-language model)."""
        if self.video is not None:
            return "video"
        if self.images:
            return "images"
        return "audio" if self.image is None and self.audio is not None else "image"

    @property
    def media_paths(self) -> dict[str, str | list[str | None]]:
        """The record fields naming the sample's files: ``{"video": path}``, ``{"images":
        [path or None, ...]}``, or nothing (the image's path is :attr:`image_path`)."""
        if isinstance(self.video, Path):
            return {"video": str(self.video.absolute())}
        if self.images:
            return {"images": [str(ref.absolute()) if isinstance(ref, Path) else None for ref in self.images]}
        return {}

    @property
    def audio_path(self) -> Path | None:
        """Absolute path of the audio file, or None when the audio is not a file."""
        return self.audio.absolute() if isinstance(self.audio, Path) else None

    def load_audio(self, limits: AudioLimits) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode the audio: a mono float32 waveform at ``limits.sampling_rate`` and the notes
        for the result record (see :func:`mm_align.data.audio.load_waveform`).

        Raises:
            BadSampleError: no audio given, unreadable, unsupported codec, empty, too long.
        """
        return load_waveform(self.audio, limits)

    @property
    def image_path(self) -> Path | None:
        """Absolute path of the image file, or None when the image is not a file."""
        return self.image.absolute() if isinstance(self.image, Path) else None

    def check_text(self) -> str:
        """Return the text, or raise ``BadSampleError("text is empty")`` when it is blank
        (or the record's ``problem``)."""
        if self.problem:
            raise BadSampleError(self.problem)
        if not self.text.strip():
            raise BadSampleError("text is empty")
        return self.text

    def load_image(self, limits: ImageLimits | None = None) -> Image.Image:
        """Decode the image fully and return it in RGB mode; ``limits`` (default: this
        sample's ``max_pixels`` and the default aspect limit) says what is accepted.

        Raises:
            BadSampleError: the image is missing, unreadable, truncated, too large or too
                small; see :func:`mm_align.data.images.load_rgb` for the conversions.
        """
        if self.image is None:
            raise BadSampleError("no image given for this sample")
        return load_rgb(self.image, limits=limits or ImageLimits(self.max_pixels))

    def load(self, limits: ImageLimits | None = None) -> tuple[Image.Image, str]:
        """Both checks at once: ``(RGB image, text)``, or ``BadSampleError``.

        The text is checked first because that costs nothing.
        """
        text = self.check_text()
        return self.load_image(limits), text

    def load_visual(self, limits: ImageLimits | None = None, frames: FrameSampling | None = None) -> Visual:
        """The decoded visual input of any modality: an RGB image, a list of RGB images, or
        a :class:`~mm_align.data.video.Video` of the frames ``frames`` picks (default: 8
        evenly spread).

        Raises:
            BadSampleError: an image or the clip is missing or unreadable (the message names
                which image of several), or the clip has no frames.
        """
        limits = limits or ImageLimits(self.max_pixels)
        if self.video is not None:
            return load_video(self.video, frames or FrameSampling(num_frames=8), limits)
        if not self.images:
            return self.load_image(limits)
        out = []
        for number, ref in enumerate(self.images, start=1):
            try:
                out.append(load_rgb(ref, limits=limits))
            except BadSampleError as err:
                raise BadSampleError(f"image {number} of {len(self.images)}: {err.reason}") from None
        return out
