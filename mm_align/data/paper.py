"""The two data sets of the paper's multi-modal experiment (Diff-eRank, section 5.2).

* LLaVA ``detail_23k.json``: a JSON list of ``{"id", "image", "conversations"}``. The text
  of a sample is its FIRST exchange: the first ``human`` turn with the ``<image>``
  placeholder removed and stripped, a newline, then the first ``gpt`` turn after it (the
  paper's "instruction and response concatenated"; detail_23k has one exchange per
  image). Images are COCO train2017 files, looked up as ``image_root/<image>``; there is
  no default for ``image_root``.
* MiniGPT-4 ``cc_sbu_align``: a folder with ``filter_cap.json`` =
  ``{"annotations": [{"image_id", "caption"}]}`` and the images at
  ``image/<image_id>.jpg`` (or ``image_root/<image_id>.jpg`` when given).

Errors name the position of the offending entry in the JSON list (``item``, 0-based).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mm_align.data.errors import ManifestError
from mm_align.data.rows import Columns, RecordReader
from mm_align.data.samples import join_instruction_response
from mm_align.data.source import SampleSource

__all__ = ["CC_SBU_ANNOTATIONS", "IMAGE_PLACEHOLDER", "open_cc_sbu_align", "open_detail_23k"]

IMAGE_PLACEHOLDER = "<image>"
CC_SBU_ANNOTATIONS = "filter_cap.json"


def open_detail_23k(
    path: str | Path, *, image_root: str | Path | None, max_pixels: int
) -> SampleSource:
    """Read LLaVA's ``detail_23k.json`` (images in ``image_root``, e.g. COCO train2017)."""
    path = Path(path)
    if image_root is None:
        raise ManifestError(
            path,
            "detail_23k names COCO train2017 files; pass image_root (--image-root) "
            "= the folder that holds them",
        )
    entries = _load_json(path, list)
    reader = RecordReader(path, Path(image_root), Columns(), max_pixels)
    samples = []
    for item, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"image", "conversations"} <= entry.keys():
            raise ManifestError(
                path, "expected an object with 'image' and 'conversations'", item=item
            )
        record = {
            "id": entry.get("id"),
            "image": entry["image"],
            "text": _first_exchange(path, item, entry["conversations"]),
        }
        samples.append(reader.sample(item, record, item=item))
    return SampleSource(samples, fmt="detail_23k", path=path)


def open_cc_sbu_align(
    path: str | Path, *, image_root: str | Path | None, max_pixels: int
) -> SampleSource:
    """Read MiniGPT-4's ``cc_sbu_align`` folder (or its ``filter_cap.json`` directly)."""
    path = Path(path)
    annotations_file = path / CC_SBU_ANNOTATIONS if path.is_dir() else path
    annotations = _load_json(annotations_file, dict).get("annotations")
    if not isinstance(annotations, list):
        raise ManifestError(annotations_file, 'expected {"annotations": [...]}')
    reader = RecordReader(
        annotations_file,
        Path(image_root or annotations_file.parent / "image"),
        Columns(),
        max_pixels,
    )
    samples = []
    for item, entry in enumerate(annotations):
        if not isinstance(entry, dict) or not {"image_id", "caption"} <= entry.keys():
            raise ManifestError(
                annotations_file, "expected an object with 'image_id' and 'caption'", item=item
            )
        image_id = reader.claim_id(entry["image_id"], item, item=item)
        record = {"image": f"{image_id}.jpg", "text": entry["caption"]}
        samples.append(reader.sample(item, record, known_id=image_id, item=item))
    return SampleSource(samples, fmt="cc_sbu_align", path=path)


def _load_json(path: Path, kind: type) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ManifestError(path, "file not found") from None
    except json.JSONDecodeError as err:
        raise ManifestError(
            path, f"invalid JSON ({err.msg} at column {err.colno})", line=err.lineno
        ) from None
    if not isinstance(data, kind):
        raise ManifestError(
            path, f"expected a JSON {'list' if kind is list else 'object'} at the top level"
        )
    return data


def _first_exchange(path: Path, item: int, conversations: Any) -> str:
    turns = conversations if isinstance(conversations, list) else []
    speakers = [t.get("from") if isinstance(t, dict) else None for t in turns]
    if "human" not in speakers or "gpt" not in speakers[speakers.index("human") :]:
        raise ManifestError(
            path, "'conversations' has no human turn followed by a gpt turn", item=item
        )
    human = speakers.index("human")
    gpt = speakers.index("gpt", human)
    values = [turns[human].get("value"), turns[gpt].get("value")]
    if not all(isinstance(v, str) for v in values):
        raise ManifestError(path, "conversation turns must have a string 'value'", item=item)
    return join_instruction_response(values[0].replace(IMAGE_PLACEHOLDER, ""), values[1])
