"""Report page of a ``mm-align scaling`` series: the fit with its band, the models, the
fitted parameters (rendering only: every number is from ``scaling.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm_align.report.fmt import interval, num
from mm_align.report.geometry_plots import STAT_LABELS, scaling_figure
from mm_align.report.html import Markup, kv_table, page, section, svg_figure, table
from mm_align.report.plots import to_inline_svg

__all__ = ["render_scaling"]


def _models(doc: Mapping[str, Any]) -> Markup:
    rows = [[m["name"], f"{m['parameters']:,d}", m["source"], m["hidden_size"], m["n_samples"],
             m["n_errors"], num(m["entropy"]), num(m["matrix_entropy"]), num(m["erank"])]
            for m in doc["models"]]
    return table(["model", "parameters", "counted from", "d", "texts", "errors", "mean H",
                  "mean H/ln d", "eRank"], rows, numeric=tuple(range(1, 9)))


def _fits(doc: Mapping[str, Any]) -> Markup:
    rows = [[STAT_LABELS.get(name, name), num(f["a"]), interval(f["ci95"]["a"]), num(f["b"]),
             interval(f["ci95"]["b"]), num(f["c"]), num(f["r2"])]
            for name, f in doc["fits"].items()]
    return table(["statistic E", "a", "95% CI", "b", "95% CI", "c", "R²"], rows,
                 numeric=(1, 2, 3, 4, 5, 6),
                 caption=f"E = a · P^b{' + c' if doc['offset'] else ''} over the "
                         f"{doc['n_texts']} texts every model scored; paired bootstrap over "
                         f"texts, {doc['n_boot']} replicates, seed {doc['seed']}")


def render_scaling(doc: Mapping[str, Any]) -> str:
    """The series' report page as an HTML string."""
    figure = svg_figure(to_inline_svg(scaling_figure(doc)), "entropy against model size")
    sections = [
        ("fit", "Fit", section("Power law in model size", figure, _fits(doc), anchor="fit")),
        ("models", "Models", section("Models", _models(doc), anchor="models")),
        ("provenance", "Provenance",
         section("Provenance", kv_table(doc["provenance"]), anchor="provenance")),
    ]
    return page(f"mm-align scaling: {doc['name']}",
                f"{len(doc['models'])} models · {doc['n_texts']} texts", sections,
                footer="Member runs (per-text results) are in members/NAME/.")
