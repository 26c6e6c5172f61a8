"""Report page of a ``mm-align sweep``: each metric against checkpoint step or projector,
the members with their intervals, and each member's paired difference from the first
(rendering only: every number is from ``sweep.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mm_align.report.blocks import layer_figure, metric_label
from mm_align.report.compare import differences_table
from mm_align.report.fmt import interval, num
from mm_align.report.html import Markup, join, kv_table, note, page, section, svg_figure, table, tag
from mm_align.report.plots import to_inline_svg, trend_figure
from mm_align.rundir import Run
from mm_align.stages import METRICS

__all__ = ["render_sweep"]


def _keys(doc: Mapping[str, Any]) -> list[str]:
    """The paper's metrics, then any ``--metrics`` the members hold, in first-seen order."""
    extra = {k: None for m in doc["members"] for k in m["metrics"] if k not in METRICS}
    return [*METRICS, *extra]


def _trend(doc: Mapping[str, Any]) -> Markup:
    members = doc["members"]
    by_step = doc["x"] == "step"
    x = [m["step"] if by_step else i for i, m in enumerate(members)]
    keys = _keys(doc)
    series = {k: [m["metrics"].get(k) for m in members] for k in keys}
    intervals = {k: [tuple(m["ci95"][k]) if k in m["ci95"] else None for m in members] for k in keys}
    fig = trend_figure(x, None if by_step else [m["name"] for m in members], series, intervals,
                       "step" if by_step else doc["kind"].removesuffix("s"))
    return svg_figure(to_inline_svg(fig), "metrics across the sweep",
                      "Dataset metric of each member; bars: 95% bootstrap interval over samples "
                      "(none for CKA, mutual k-NN and MIR, computed once over the whole set).")


def _value(member: Mapping[str, Any], key: str) -> Markup:
    return join([num(member["metrics"].get(key)), Markup("<br>"),
                 tag("small", interval(member["ci95"].get(key)))])


def _vision(member: Mapping[str, Any]) -> str:
    vision = member.get("vision") or {}
    if vision.get("computed") is None:
        return "–"
    if vision.get("problem"):
        return f"not reused: {vision['problem']}"
    return f"{vision['reused']} reused, {vision['computed']} computed"


def _members(doc: Mapping[str, Any]) -> Markup:
    keys = _keys(doc)
    rows = []
    for m in doc["members"]:
        link = tag("a", m["name"], href=f"{m['run']}/report.html")
        source = Path(m["projector"]).name if m["projector"] else (
            m["model"] + (f"@{m['revision']}" if m["revision"] else ""))
        rows.append([link, m["step"] if m["step"] is not None else "–", source, m["n_samples"],
                     m["n_errors"], *(_value(m, k) for k in keys), _vision(m)])
    return table(["member", "step", "projector" if doc["kind"] == "projectors" else "checkpoint",
                  "samples", "errors", *(metric_label(k) for k in keys), "vision batches"],
                 rows, numeric=tuple(range(3, 5 + len(keys))),
                 caption="value and 95% bootstrap interval over the member's samples")


def _failed(doc: Mapping[str, Any]) -> Markup:
    return join(note(f"{name} failed and is not in the sweep: {reason}", "warn")
                for name, reason in doc.get("failed", {}).items())


def _reuse(doc: Mapping[str, Any]) -> Markup:
    reuse = doc["vision_reuse"]
    if not reuse["enabled"]:
        return note("The vision tower ran for every member (--no-reuse-vision).")
    return note(f"Vision tower: {reuse['computed']} batches computed, {reuse['reused']} replayed from "
                "the feature cache in this invocation (members finished earlier are not counted).")


def render_sweep(doc: Mapping[str, Any], members: Mapping[str, Run]) -> str:
    """The sweep's report page as an HTML string; ``members``: the member runs by name (for
    their per-layer curves)."""
    comparison = doc["comparison"]
    diffs = comparison["differences"]
    sections = [
        ("trend", "Trend", section("Metrics across the sweep", _trend(doc), anchor="trend")),
        ("members", "Members", section("Members", _failed(doc), _reuse(doc), _members(doc), anchor="members")),
    ]
    layers = layer_figure(members)
    if layers:
        sections.append(("layers", "Layers", section("Per-layer eRank and alignment", layers, anchor="layers")))
    if diffs:
        sections.append(("differences", "Differences", section(
            f"Each member against the first ({comparison['baseline']})",
            differences_table(comparison["baseline"], diffs), anchor="differences")))
    sections.append(("provenance", "Provenance", section(
        "Provenance", kv_table({"config": doc["config"], "versions": doc["versions"]}), anchor="provenance")))
    return page(f"mm-align sweep: {doc['name']}",
                f"{len(doc['members'])} {doc['kind']} · {doc['data']}", sections,
                footer="Member runs (per-sample results, own reports) are in members/NAME/.")
