"""What a scoring run returns to Python: the same numbers a CLI run writes to its directory,
with the views a notebook wants (a summary at a glance, tidy frames, a plot)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mm_align.pipeline.export import export_row
from mm_align.pipeline.export_format import CI_HI, CI_LO
from mm_align.rundir import Run

__all__ = ["ScoreResult"]

_HEADLINE = ("erank_image", "erank_text", "image_reduction_ratio", "image_text_alignment", "diff_erank")
_PLAIN = ("erank_trained", "erank_untrained")  # diff-erank's eRanks carry no interval


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


@dataclass
class ScoreResult:
    """A finished run.

    Attributes:
        summary: ``summary.json``'s content (dataset eRanks, ratios, intervals, provenance).
        results: per-sample records (``results.jsonl``), in data set order.
        errors: per-sample error records (``errors.jsonl``), in data set order.
        controls: control / perturbation / baseline name -> its result.
        out: the run directory, or None for a run kept in memory.
    """

    summary: dict[str, Any]
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    controls: dict[str, ScoreResult] = field(default_factory=dict)
    out: Path | None = None

    @property
    def run(self) -> Run:
        """The result read as a run directory is (:class:`~mm_align.rundir.Run`)."""
        return Run(Path(self.out) if self.out else Path("<in memory>"), self.summary,
                   self.results, self.errors)

    def summary_rows(self) -> list[dict[str, Any]]:
        """The dataset metrics as ``{"metric", "value", "lo", "hi"}`` records (the bounds of
        the 95 % bootstrap interval, None where there is none), in summary order; controls'
        differences are ``diff_<control>_<metric>``."""
        row = export_row("", self.run)
        keys = [k for k in row if (k + CI_LO in row and "_layer" not in k) or k in _PLAIN]
        return [{"metric": k, "value": row[k], "lo": row.get(k + CI_LO), "hi": row.get(k + CI_HI)}
                for k in keys if row[k] is not None]

    def summary_frame(self) -> Any:
        """The dataset metrics as a tidy ``pandas.DataFrame``: columns metric, value, lo, hi."""
        import pandas as pd

        return pd.DataFrame(self.summary_rows(), columns=["metric", "value", "lo", "hi"])

    def layers_rows(self) -> list[dict[str, Any]]:
        """Per-layer dataset eRanks (a run with ``layers``) as ``{"layer", "name", "stage",
        "eRank", "lo", "hi"}`` records: ``layer`` in ``output_hidden_states`` numbering,
        ``name`` "embeddings" for layer 0, else "layer N"; empty when no layer was swept."""
        run = self.run
        intervals = run.layer_ci()
        rows = []
        for stage, per_layer in run.layers().items():
            for layer, value in per_layer.items():
                lo, hi = intervals.get(stage, {}).get(layer, (None, None))
                rows.append({"layer": layer, "name": "embeddings" if layer == 0 else f"layer {layer}",
                             "stage": stage, "eRank": value, "lo": lo, "hi": hi})
        return sorted(rows, key=lambda r: r["layer"])

    def layers_frame(self) -> Any:
        """Per-layer eRanks as a tidy ``pandas.DataFrame``: layer, name, stage, eRank, lo, hi
        (see :meth:`layers_rows`)."""
        import pandas as pd

        return pd.DataFrame(self.layers_rows(), columns=["layer", "name", "stage", "eRank", "lo", "hi"])

    def plot(self) -> Any:
        """A matplotlib figure: per-layer eRanks with their intervals when layers were
        swept, else the dataset eRanks with theirs."""
        from mm_align.pipeline.result_plot import plot_result

        return plot_result(self.summary_rows(), self.layers_rows(), self.run.model_name)

    def to_pandas(self) -> Any:
        """The per-sample results as a ``pandas.DataFrame`` (one row per sample)."""
        import pandas as pd

        return pd.json_normalize(self.results)

    def _headline(self) -> list[str]:
        rows = {r["metric"]: r for r in self.summary_rows()}
        out = []
        for key in (k for k in _HEADLINE if k in rows):
            r = rows[key]
            bounds = f" [{_num(r['lo'])}, {_num(r['hi'])}]" if r["lo"] is not None else ""
            out.append(f"{key}={_num(r['value'])}{bounds}")
        return out

    def __repr__(self) -> str:
        run = self.run
        parts = [f"model={run.model_name!r}", f"n={run.n_samples}", f"errors={run.n_errors}",
                 *self._headline()]
        if self.controls:
            parts.append(f"controls={sorted(self.controls)}")
        if self.out:
            parts.append(f"out={str(self.out)!r}")
        return "ScoreResult(" + ", ".join(parts) + ")"

    def _repr_html_(self) -> str:
        """The summary table, for Jupyter."""
        run = self.run
        head = (f"<p><b>{html.escape(str(run.model_name))}</b>: {run.n_samples} samples scored, "
                f"{run.n_errors} failed" + (f", in <code>{html.escape(str(self.out))}</code>" if self.out else "")
                + "</p>")
        cells = "".join(
            f"<tr><td>{html.escape(r['metric'])}</td><td>{_num(r['value'])}</td>"
            f"<td>{_num(r['lo'])}</td><td>{_num(r['hi'])}</td></tr>" for r in self.summary_rows())
        return (head + "<table><thead><tr><th>metric</th><th>value</th><th>95% lo</th>"
                f"<th>95% hi</th></tr></thead><tbody>{cells}</tbody></table>")
