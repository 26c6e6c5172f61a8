"""Checks on the records of ``results.jsonl`` and ``errors.jsonl`` as they are read back: a
hand-edited or pasted record must not slip into a report, a comparison or an export.

The pipeline writes, for every sample, ``id`` (a string), ``index`` (its 0-based place among
the samples the run selected) and, in a result, finite numbers for every metric
(``erank_*``, ``entropy_*``, the ratios, ``diff_erank``). A record that breaks one of these
rules is left out, and a problem names its file, line and what is wrong, so the counts a page
shows always agree with the rows of its table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NUMBER_FIELDS", "check_records"]

NUMBER_FIELDS = ("image_reduction_ratio", "image_text_alignment", "diff_erank")
"""Per-sample numbers besides the ``erank_*`` and ``entropy_*`` fields."""

_NUMBER_PREFIXES = ("erank_", "entropy_")


def _number_problem(key: str, value: Any) -> str | None:
    """Why ``value`` of field ``key`` is not what the pipeline writes there, or None."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and not math.isfinite(value):
        return f"{key!r} is {value}, not a finite number"
    if not is_number and (key.startswith(_NUMBER_PREFIXES) or key in NUMBER_FIELDS):
        return f"{key!r} is {value!r}, not a number"
    return None


def _record_problem(record: dict[str, Any], n_selected: int | None, result: bool) -> str | None:
    """The first rule ``record`` breaks (see the module doc), or None."""
    sample_id, index = record.get("id"), record.get("index")
    if not isinstance(sample_id, str) or not sample_id:
        return f"'id' is {sample_id!r}, not a sample id"
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return f"sample {sample_id!r}: 'index' is {index!r}, not a sample's place"
    if n_selected is not None and index >= n_selected:
        return f"sample {sample_id!r}: index {index} is beyond the run's {n_selected} samples: not its data"
    for key, value in record.items() if result else ():
        if (why := _number_problem(key, value)) is not None:
            return f"sample {sample_id!r}: {why}"
    return None


def check_records(
    numbered: Mapping[str, Sequence[tuple[int, dict[str, Any]]]], n_selected: int | None, problems: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The valid records of each file (``{file name: [(line, record), ...]}``, results first),
    in order; each record left out is described in ``problems`` with its file and line.

    ``n_selected``: how many samples the run selected (scored + failed, from its summary), so
    that an ``index`` outside them marks a record that is not of this run's data; None when
    unknown. A second record at an ``index`` already taken is left out too.
    """
    kept: dict[str, list[dict[str, Any]]] = {}
    places: dict[int, str] = {}
    for number, (name, records) in enumerate(numbered.items()):
        kept[name] = []
        for line, record in records:
            why = _record_problem(record, n_selected, result=number == 0)
            if why is None and record["index"] in places:
                why = f"sample {record['id']!r}: index {record['index']} is already sample {places[record['index']]!r}'s"
            if why is not None:
                problems.append(f"{name} line {line}: {why}; left out")
                continue
            places[record["index"]] = record["id"]
            kept[name].append(record)
    return kept
