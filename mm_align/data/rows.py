"""Records -> samples: the one place where every format's rows are validated and turned
into :class:`~mm_align.data.samples.Sample` objects.

Each format only has to produce mappings (a JSONL object, a CSV row, a Hugging Face row,
or a record built from the paper's JSON layouts); the column rules live here:

* image column (default ``image``): a path (relative paths are resolved against the
  format's base folder), encoded bytes, a Hugging Face ``{"bytes", "path"}`` dict, or a
  PIL image. A null or empty value gives a sample whose ``load_image()`` reports "no image
  given"; a missing column is a :class:`ManifestError`.
* text column (default ``text``); without it, ``instruction`` + ``response`` joined by
  :func:`~mm_align.data.samples.join_instruction_response`. A null text counts as empty
  (a bad sample, not a malformed manifest).
* ``id`` (optional): a string or integer; the sample's index as a string by default.
  Duplicate ids are a :class:`ManifestError`, because run files are keyed by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mm_align.data.errors import ManifestError
from mm_align.data.samples import ImageRef, Sample, join_instruction_response

__all__ = ["Columns", "RecordReader"]


@dataclass(frozen=True)
class Columns:
    """Names of the columns a format reads."""

    image: str = "image"
    text: str = "text"
    id: str = "id"
    instruction: str = "instruction"
    response: str = "response"
    text_named: bool = False
    """The user named the text column: no falling back to instruction + response."""

    def with_overrides(self, image: str | None, text: str | None) -> Columns:
        """These columns, with the user's ``image_column`` / ``text_column`` if given."""
        return Columns(
            image=image or self.image,
            text=text or self.text,
            id=self.id,
            instruction=self.instruction,
            response=self.response,
            text_named=text is not None,
        )


class RecordReader:
    """Validates records of one file and turns them into samples.

    Args:
        path: the file the records come from (named in every :class:`ManifestError`).
        base_dir: folder that relative image paths are resolved against.
        columns: the column names.
        max_pixels: passed on to every sample.
    """

    def __init__(self, path: str | Path, base_dir: Path, columns: Columns, max_pixels: int) -> None:
        self.path = Path(path)
        self.base_dir = base_dir
        self.columns = columns
        self.max_pixels = max_pixels
        self._seen_ids: dict[str, str] = {}

    def error(self, message: str, where: Mapping[str, int | None]) -> ManifestError:
        """A ManifestError for this file at ``where`` (``{"line": n}`` or ``{"item": i}``)."""
        return ManifestError(self.path, message, **where)

    def check_columns(self, names: Iterable[str], **where: int | None) -> None:
        """Fail unless ``names`` holds the image column and a text source."""
        names = set(names)
        c = self.columns
        if c.image not in names:
            raise self.error(f"no '{c.image}' column (columns: {sorted(names)})", where)
        if c.text not in names and (c.text_named or not {c.instruction, c.response} <= names):
            raise self.error(
                f"no '{c.text}' column, nor '{c.instruction}' + '{c.response}' "
                f"(columns: {sorted(names)})",
                where,
            )

    def claim_id(self, sample_id: Any, index: int, **where: int | None) -> str:
        """The id of record ``index`` as a string; fails on a bad type or a repeated id."""
        if sample_id is None or (isinstance(sample_id, str) and not sample_id.strip()):
            sample_id = str(index)  # a blank optional id (an empty CSV cell) means "none"
        elif isinstance(sample_id, (str, int)) and not isinstance(sample_id, bool):
            sample_id = str(sample_id)
        else:
            raise self.error(
                f"'{self.columns.id}' must be a string or an integer, got {sample_id!r}", where
            )
        location = ", ".join(f"{k} {v}" for k, v in where.items() if v is not None)
        if sample_id in self._seen_ids:
            raise self.error(
                f"duplicate id {sample_id!r} (first at {self._seen_ids[sample_id]})", where
            )
        self._seen_ids[sample_id] = location or f"index {index}"
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
        if isinstance(value, Mapping) and {"bytes", "path"} <= value.keys():
            # A datasets Image feature read with decode=False.
            value = value["bytes"] if value["bytes"] is not None else value["path"]
        if value is None or value == "":
            return None
        if isinstance(value, (str, Path)):
            return (self.base_dir / Path(value).expanduser()).absolute()
        if isinstance(value, (bytes, Image.Image)):
            return value
        raise self.error(
            f"'{self.columns.image}' must be a file path, image bytes or an image, "
            f"got {type(value).__name__}",
            where,
        )

    def sample(
        self, index: int, record: Any, *, known_id: str | None = None, **where: int | None
    ) -> Sample:
        """Validate one record and build its sample.

        ``known_id`` skips the id check for readers that claimed all ids up front.
        """
        if not isinstance(record, Mapping):
            raise self.error(f"expected an object, got {type(record).__name__}", where)
        self.check_columns(record.keys(), **where)
        return Sample(
            id=known_id
            if known_id is not None
            else self.claim_id(record.get(self.columns.id), index, **where),
            index=index,
            text=self.text_of(record, **where),
            image=self.image_of(record[self.columns.image], **where),
            max_pixels=self.max_pixels,
        )

    def _string(self, value: Any, column: str, where: Mapping[str, int | None]) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(f"'{column}' must be a string, got {type(value).__name__}", where)
        return value
