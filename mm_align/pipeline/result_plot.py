""":meth:`ScoreResult.plot <mm_align.pipeline.result.ScoreResult.plot>`: one figure of a run
for a notebook (the report draws its own, richer ones)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["plot_result"]


def _layers(ax: Any, layers: Sequence[dict[str, Any]]) -> None:
    for stage in dict.fromkeys(r["stage"] for r in layers):
        rows = [r for r in layers if r["stage"] == stage]
        x = [r["layer"] for r in rows]
        ax.plot(x, [r["eRank"] for r in rows], marker="o", label=f"eRank {stage}")
        if all(r["lo"] is not None for r in rows):
            ax.fill_between(x, [r["lo"] for r in rows], [r["hi"] for r in rows], alpha=0.2)
    ticks = sorted({r["layer"] for r in layers})
    ax.set_xticks(ticks, ["emb" if t == 0 else str(t) for t in ticks])
    ax.set_xlabel("layer (emb: embeddings)")
    ax.set_ylabel("dataset eRank")
    ax.legend()


def _eranks(ax: Any, summary: Sequence[dict[str, Any]]) -> None:
    rows = [r for r in summary if r["metric"].startswith("erank_")]
    names = [r["metric"].removeprefix("erank_") for r in rows]
    values = [r["value"] for r in rows]
    err = [[r["value"] - r["lo"] if r["lo"] is not None else 0 for r in rows],
           [r["hi"] - r["value"] if r["hi"] is not None else 0 for r in rows]]
    ax.bar(names, values, yerr=err, capsize=4, color="#4c72b0")
    ax.set_ylabel("dataset eRank (95% interval)")


def plot_result(summary: Sequence[dict[str, Any]], layers: Sequence[dict[str, Any]],
                title: str | None) -> Any:
    """A ``matplotlib.figure.Figure``: ``layers`` (records of ``ScoreResult.layers_rows``)
    as curves with interval bands when there are any, else the eRanks of ``summary``
    (``ScoreResult.summary_rows``) as bars with interval whiskers."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.add_subplot()
    (_layers if layers else _eranks)(ax, layers or summary)
    ax.set_title(title or "run")
    return fig
