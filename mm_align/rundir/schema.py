"""``summary.json``: its typed layout, its version, and its only writer and reader.

Every command writes the same frame (:class:`Summary`): ``schema`` (this layout's version,
:data:`SCHEMA_VERSION`), ``n_samples``, ``n_errors`` and ``provenance``, then the fields of its
kind (listed below; a run that scored nothing has only the frame). The reader takes one
spelling of each field: interval keys are the metric keys of
:data:`mm_align.stages.METRICS` (``ci95["erank_vision"]``, never ``ci95["vision"]``).

Versions: a summary without ``schema`` was written by the releases before the field existed;
their layout is schema 1's, so it is read as schema 1 (no change needed, docs/CHOICES.md).
Any other version is refused in one line, naming the versions this mm-align reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from mm_align.rundir.layout import RunDirError, read_json, write_json

__all__ = ["SCHEMA_VERSION", "Summary", "read_summary", "stamp", "write_summary"]

SCHEMA_VERSION = 1
"""The version of the layout below; raise it when a field changes meaning or spelling."""


class _Frame(TypedDict):
    schema: int
    n_samples: int
    n_errors: int
    provenance: dict[str, Any]


class Summary(_Frame, total=False):
    """One run's ``summary.json``. Fields by kind (besides the frame):

    * ``score``: ``erank`` / ``erank_mean`` (stage -> value), ``image_reduction_ratio``,
      ``image_text_alignment``, ``ci95`` (metric -> [lo, hi]), ``tokens_mean``; swept layers:
      ``layers``, ``layers_ci95``; ``--metrics``: ``metrics``; controls: ``controls``; the
      untrained baseline: ``diff_erank`` (metric -> paired difference).
    * ``diff-erank``: ``diff_erank`` ({"paper", "mean"}), ``erank`` / ``erank_mean`` /
      ``matrix_entropy`` (model -> value), ``ci95``, ``tokens_mean``.
    * ``info-gain`` and ``attribution``: ``analysis`` and their tables
      (:mod:`mm_align.pipeline.info_gain_run`, :mod:`mm_align.pipeline.attribution_run`).
    * ``scaling-member``: ``entropy``, ``erank``, ``erank_mean``, ``matrix_entropy``,
      ``hidden_size``, ``tokens_mean`` (numbers).
    """

    erank: Any
    erank_mean: Any
    image_reduction_ratio: float
    image_text_alignment: float
    ci95: dict[str, list[float]]
    tokens_mean: Any
    layers: dict[str, Any]
    layers_ci95: dict[str, Any]
    metrics: dict[str, Any]
    controls: dict[str, Any]
    diff_erank: dict[str, Any]
    matrix_entropy: Any
    analysis: str
    entropy: float
    hidden_size: int


def stamp(summary: Mapping[str, Any]) -> Summary:
    """``summary`` with this layout's version, checked to hold the frame.

    Raises:
        ValueError: a frame field is missing (a bug in the command that built it).
    """
    missing = [k for k in _Frame.__annotations__ if k != "schema" and k not in summary]
    if missing:
        raise ValueError(f"a summary needs {', '.join(missing)}")
    return {**summary, "schema": SCHEMA_VERSION}  # type: ignore[typeddict-item]


def write_summary(path: Path, summary: Mapping[str, Any]) -> Summary:
    """Write ``summary`` (stamped, :func:`stamp`) to ``path`` atomically; return what was written."""
    doc = stamp(summary)
    write_json(path, doc)
    return doc


def read_summary(path: Path) -> Summary:
    """The summary at ``path``, checked against this layout's version.

    Raises:
        RunDirError: not valid JSON, not an object, or a version this mm-align does not read.
    """
    try:
        doc = read_json(path)
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RunDirError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    version = doc.setdefault("schema", SCHEMA_VERSION)  # no field: written before it existed
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise RunDirError(f"{path}: summary schema {version!r} is not one this mm-align reads "
                          f"(it reads {SCHEMA_VERSION}); use the mm-align that wrote it")
    return doc  # type: ignore[return-value]
