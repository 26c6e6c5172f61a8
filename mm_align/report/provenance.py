"""The provenance diff of a comparison (:func:`mm_align.pipeline.comparison.provenance_diff`)
as a page block: what differs between the runs, and what they share."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mm_align.report.html import Markup, join, kv_table, note, table, tag

__all__ = ["provenance_diff_block"]


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def provenance_diff_block(diff: Mapping[str, Any], labels: Sequence[str]) -> Markup:
    """A table of the fields that differ (one column per run); those all runs share are
    folded in a ``<details>`` (open it to read them)."""
    parts = []
    if diff["differs"]:
        rows = [[tag("code", name), *(_shown(values.get(label)) for label in labels)]
                for name, values in diff["differs"].items()]
        parts.append(table(["Field", *labels], rows, caption="What differs between the runs"))
    else:
        parts.append(note("The runs' provenance and options are identical."))
    if diff["equal"]:
        summary = tag("summary", f"{len(diff['equal'])} fields equal in every run")
        parts.append(tag("details", join([summary, kv_table(diff["equal"])])))
    return join(parts)
