"""Each control's and perturbation's paired difference from the real run (``summary.json``
``controls``, computed by :func:`mm_align.pipeline.summary.control_differences`), as a table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm_align.report.blocks import difference_rows
from mm_align.report.html import Markup, join, table, tag

__all__ = ["control_differences_block"]


def control_differences_block(summary: Mapping[str, Any]) -> Markup:
    """Rows = metrics, columns = controls; each cell the difference (control − real run),
    its 95% paired interval and p-value. Empty when the run has no controls."""
    controls = summary.get("controls")
    if not isinstance(controls, Mapping) or not controls:
        return Markup("")
    rows = difference_rows(list(controls.values()))
    return join([
        tag("h3", "Controls: difference from the real run"),
        table(["Metric", *(f"{name} − real" for name in controls)], rows,
              numeric=range(1, len(controls) + 1),
              caption="Paired bootstrap over the samples scored in both runs: difference, 95% "
              "interval and two-sided p-value. A real alignment effect moves away from 0."),
    ])
