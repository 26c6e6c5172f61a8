"""Records -> samples: the one place where every format's rows are validated and turned
into :class:`~mm_align.data.samples.Sample` objects.

Each format only has to produce mappings (a JSONL object, a CSV row, a parquet or Hugging
Face row, a WebDataset sample's members, or a record built from the paper's JSON layouts);
the column rules live here:

* columns are detected by name unless the user names them (``--image-column``,
  ``--text-column``, ``--id-column``, in every format): image from
  :data:`IMAGE_COLUMNS`, text from :data:`TEXT_COLUMNS` (else ``instruction`` +
  ``response`` joined by :func:`~mm_align.data.samples.join_instruction_response`, else
  ``response`` alone), id from ``id``. Two candidates for one role is a
  :class:`ManifestError` that lists them and names the flag.
* image column: a path (relative paths are resolved against the format's base folder),
  encoded bytes, a Hugging Face ``{"bytes", "path"}`` dict, or a PIL image. A null or empty
  value gives a sample whose ``load_image()`` reports "no image given"; a missing column is
  a :class:`ManifestError`.
* or ``images`` (several images of one sample, in order: a list of such values, at least
  one), or ``video`` (a clip file or a folder of frames, relative paths as for images, or
  encoded bytes); a record gives exactly one of the three. An image path whose suffix is a
  video's (``.mp4``, ``.webm``, ``.mkv``, ``.gif`` ...) is read as a video, so image folders
  and image columns can hold clips too.
* audio (``audio``): a path or encoded bytes (or a Hugging Face ``{"bytes", "path"}`` dict)
  of an audio file. A record needs one of the image columns or the audio one (an
  audio-language model reads the audio, a VLM the image); a record may give both.
* text: a null text counts as empty (a bad sample, not a malformed manifest).
* a text or an id that is not valid Unicode (a lone surrogate from a ``"\\ud800"`` JSON
  escape) makes that sample a bad one, its line named; the id is kept backslash-escaped
  (:func:`~mm_align.data.samples.unicode_checked`).
* id (optional): a string or integer. Without one (no id column, or a blank cell) the id is
  derived from the content (:func:`~mm_align.data.content.content_id`) where the format
  asks for it, else the sample's index as a string. A repeated explicit id is a
  :class:`ManifestError`, because run files are keyed by id; a repeated content id (the
  same image and text twice) gets ``-2``, ``-3``, ... in data set order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mm_align.data.audio import AudioRef
from mm_align.data.content import content_id, media_digest
from mm_align.data.errors import ManifestError
from mm_align.data.samples import ImageRef, Sample, join_instruction_response, unicode_checked
from mm_align.data.video import VideoRef, is_video_path

__all__ = ["IMAGE_COLUMNS", "TEXT_COLUMNS", "Columns", "RecordReader", "place"]

#: Column names taken for the image when the user names none (WebDataset members included).
IMAGE_COLUMNS = ("image", "img", "jpg", "jpeg", "png", "webp", "file_name", "filename", "path")
#: Column names taken for the text when the user names none.
TEXT_COLUMNS = ("text", "caption", "txt", "sentence")
_FLAGS = {"image": "--image-column", "text": "--text-column"}


@dataclass(frozen=True)
class Columns:
    """Names of the columns a format reads."""

    image: str = "image"
    text: str = "text"
    audio: str = "audio"
    id: str = "id"
    instruction: str = "instruction"
    response: str = "response"
    images: str = "images"
    video: str = "video"
    text_named: bool = False
    """The user named the text column: no falling back to instruction + response."""
    image_named: bool = False
    id_named: bool = False

    def with_overrides(self, image: str | None, text: str | None, id: str | None = None) -> Columns:
        """These columns, with the user's ``image_column`` / ``text_column`` / ``id_column``."""
        return dataclasses.replace(
            self, image=image or self.image, text=text or self.text, id=id or self.id,
            image_named=image is not None, text_named=text is not None, id_named=id is not None,
        )

    def fit(self, names: Iterable[str]) -> tuple[Columns, str | None]:
        """These columns with each role the user did not name detected among ``names``
        (see the module doc), or the columns unchanged and why detection failed."""
        names = set(names)
        image, text = self.image, self.text
        if not self.image_named:
            found = [n for n in IMAGE_COLUMNS if n in names]
            if len(found) > 1:
                return self, _ambiguous("image", found)
            image = found[0] if found else image
        if not self.text_named:
            found = [n for n in TEXT_COLUMNS if n in names]
            if len(found) > 1:
                return self, _ambiguous("text", found)
            if found:
                text = found[0]
            elif self.response in names and self.instruction not in names:
                text = self.response  # a response alone is the text; with an instruction, joined
        return dataclasses.replace(self, image=image, text=text), None


def place(where: Mapping[str, int | None]) -> str:
    """Where a record is, in words: ``{"line": 3}`` -> ``"line 3"``."""
    return ", ".join(f"{k} {v}" for k, v in where.items() if v is not None)


def _ambiguous(role: str, found: list[str]) -> str:
    return (f"{len(found)} candidate {role} columns: {', '.join(found)}; name the one to use with "
            f"{_FLAGS[role]}")


class RecordReader:
    """Validates records of one file and turns them into samples.

    Args:
        path: the file the records come from (named in every :class:`ManifestError`).
        base_dir: folder that relative image paths are resolved against.
        columns: the column names.
        max_pixels: passed on to every sample.
    """

    def __init__(self, path: str | Path, base_dir: Path, columns: Columns, max_pixels: int,
                 *, content_ids: bool = False) -> None:
        self.path = Path(path)
        self.base_dir = base_dir
        self.columns = columns
        self.max_pixels = max_pixels
        self.content_ids = content_ids
        self._fitted = False
        self._seen_ids: dict[str, str] = {}

    def error(self, message: str, where: Mapping[str, int | None]) -> ManifestError:
        """A ManifestError for this file at ``where`` (``{"line": n}`` or ``{"item": i}``)."""
        return ManifestError(self.path, message, **where)

    def check_columns(self, names: Iterable[str], **where: int | None) -> None:
        """Fail unless ``names`` holds an image (or ``images``, ``video`` or ``audio``) column
        and a text source; the first call detects the columns the user did not name (the same
        for every later record)."""
        names = set(names)
        if not self._fitted:
            self.columns, problem = self.columns.fit(names)
            if problem:
                raise self.error(f"{problem} (columns: {sorted(names)})", where)
            self._fitted = True
        c = self.columns
        if not names & {c.image, c.images, c.video, c.audio}:
            hint = "" if c.image_named else f"; looked for {', '.join(IMAGE_COLUMNS)}"
            raise self.error(f"no '{c.image}' column, nor '{c.images}', '{c.video}' or '{c.audio}' "
                             f"(columns: {sorted(names)}){hint}; name it with --image-column", where)
        if c.text not in names and (c.text_named or not {c.instruction, c.response} <= names):
            raise self.error(
                f"no '{c.text}' column, nor '{c.instruction}' + '{c.response}' "
                f"(columns: {sorted(names)}); looked for {', '.join(TEXT_COLUMNS)}; name it with "
                "--text-column",
                where,
            )
        if c.id_named and c.id not in names:
            raise self.error(f"no '{c.id}' column (columns: {sorted(names)}) for --id-column", where)

    def claim_id(self, sample_id: Any, index: int, content: Callable[[], str] | None = None, /,
                 **where: int | None) -> str:
        """The id of record ``index`` as a string; fails on a bad type or a repeated id.

        A missing or blank id is ``content()`` when given (a repeat then gets ``-2``, ``-3``,
        ...), else the index."""
        if sample_id is None or (isinstance(sample_id, str) and not sample_id.strip()):
            # A blank optional id (an empty CSV cell) means "none".
            return self._claim_content(content(), where) if content else self._claim(str(index), index, where)
        if isinstance(sample_id, (str, int)) and not isinstance(sample_id, bool):
            return self._claim(str(sample_id), index, where)
        raise self.error(
            f"'{self.columns.id}' must be a string or an integer, got {sample_id!r}", where
        )

    def _claim(self, sample_id: str, index: int, where: Mapping[str, int | None]) -> str:
        location = place(where)
        if sample_id in self._seen_ids:
            raise self.error(
                f"duplicate id {sample_id!r} (first at {self._seen_ids[sample_id]})", where
            )
        self._seen_ids[sample_id] = location or f"index {index}"
        return sample_id

    def _claim_content(self, base: str, where: Mapping[str, int | None]) -> str:
        sample_id, repeat = base, 1
        while sample_id in self._seen_ids:
            repeat += 1
            sample_id = f"{base}-{repeat}"
        self._seen_ids[sample_id] = ""
        return sample_id

    def text_of(self, record: Mapping[str, Any], **where: int | None) -> str:
        """The record's text (see the module doc for the rules)."""
        c = self.columns
        if c.text in record:
            return self._string(record[c.text], c.text, where)
        return join_instruction_response(
            self._string(record[c.instruction], c.instruction, where),
            self._string(record[c.response], c.response, where),
        )

    def image_of(self, value: Any, **where: int | None) -> ImageRef:
        """The record's image reference (see the module doc for the accepted values)."""
        value = self._file_ref(value)
        if value is None or isinstance(value, (Path, bytes, Image.Image)):
            return value
        raise self.error(
            f"'{self.columns.image}' must be a file path, image bytes or an image, "
            f"got {type(value).__name__}",
            where,
        )

    def audio_of(self, value: Any, **where: int | None) -> AudioRef:
        """The record's audio reference: a file path or the encoded bytes."""
        value = self._file_ref(value)
        if value is None or isinstance(value, (Path, bytes)):
            return value
        raise self.error(
            f"'{self.columns.audio}' must be a file path or audio bytes, got {type(value).__name__}", where
        )

    def _file_ref(self, value: Any) -> Any:
        """A path resolved against the base folder, the bytes of a Hugging Face
        ``{"bytes", "path"}`` dict (an Image or Audio feature read with decode=False), None for
        a null or empty value; anything else as it is."""
        if isinstance(value, Mapping) and {"bytes", "path"} <= value.keys():
            value = value["bytes"] if value["bytes"] is not None else value["path"]
        if value is None or value == "":
            return None
        if isinstance(value, (str, Path)):
            return (self.base_dir / Path(value).expanduser()).absolute()
        return value

    def media_of(self, record: Mapping[str, Any], **where: int | None) -> dict[str, Any]:
        """The sample's ``image``, ``images`` or ``video`` reference (one of them)."""
        c = self.columns
        given = [name for name in (c.image, c.images, c.video) if _given(record.get(name))]
        if len(given) > 1:
            raise self.error(f"give one of '{c.image}', '{c.images}' and '{c.video}', not {given}", where)
        if given == [c.video] or (given == [c.image] and self._is_clip(record[c.image])):
            return {"image": None, "video": self.video_of(record[given[0]], given[0], where)}
        if given != [c.images]:
            return {"image": self.image_of(record.get(c.image), **where)}
        value = record[c.images]
        if not isinstance(value, (list, tuple)):
            raise self.error(f"'{c.images}' must be a list of images, got {type(value).__name__}", where)
        return {"image": None, "images": tuple(self.image_of(item, **where) for item in value)}

    def _is_clip(self, value: Any) -> bool:
        return isinstance(value, (str, Path)) and is_video_path(Path(value))

    def video_of(self, value: Any, column: str, where: Mapping[str, int | None]) -> VideoRef:
        """A clip's reference: a path (file or folder of frames) or encoded bytes."""
        value = self._file_ref(value)
        if isinstance(value, (Path, bytes)):
            return value
        raise self.error(f"'{column}' must be a video file or folder path or video bytes, got "
                         f"{type(value).__name__}", where)

    def sample(
        self, index: int, record: Any, *, known_id: str | None = None, origin: str | None = None,
        **where: int | None,
    ) -> Sample:
        """Validate one record and build its sample.

        ``known_id`` skips the id check for readers that claimed all ids up front; ``origin``
        says where a stream's sample came from (shard and key, file and row).
        """
        if not isinstance(record, Mapping):
            raise self.error(f"expected an object, got {type(record).__name__}", where)
        self.check_columns(record.keys(), **where)
        text = self.text_of(record, **where)
        media = self.media_of(record, **where)
        c = self.columns
        audio = self.audio_of(record[c.audio], **where) if c.audio in record else None
        if known_id is None:
            heard = audio is not None and not any(map(_given, media.values()))  # an audio-only record

            def content() -> str:
                return content_id(audio, text) if heard else content_id(None, text, digest=media_digest(**media))

            known_id = self.claim_id(record.get(c.id), index, content if self.content_ids else None, **where)
        sample = Sample(id=known_id, index=index, text=text, max_pixels=self.max_pixels, origin=origin, audio=audio,
                        **media)
        return unicode_checked(sample, origin or place(where))

    def _string(self, value: Any, column: str, where: Mapping[str, int | None]) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(f"'{column}' must be a string, got {type(value).__name__}", where)
        return value


def _given(value: Any) -> bool:
    """Whether a media cell holds something (None, "" and [] are empty cells)."""
    return value is not None and not (isinstance(value, (str, list, tuple)) and len(value) == 0)
