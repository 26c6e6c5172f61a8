"""Matplotlib figures for the report and the comparison page, returned as ``data:`` URIs.

Figures are built with :class:`matplotlib.figure.Figure` directly, never pyplot: no global
figure registry to leak memory across a long run, and no ``matplotlib.use()`` that would
change the backend of a caller's interactive session. Saving to PNG uses the Agg renderer.

Every function takes its series as ``label -> values`` so the same figure serves one run
(report), a run and its controls (report), or several runs (compare).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import MaxNLocator

from mm_align.report.fmt import METRIC_LABELS, interval, num

__all__ = [
    "grouped_bars",
    "histograms",
    "layer_curves",
    "pipeline_diagram",
    "spectra",
    "to_data_uri",
]

_DPI = 110
_STAGE_COLOURS = {
    "vision": "#7a5195",
    "projector": "#bc5090",
    "image": "#ef5675",
    "text": "#2f5d9e",
    "joint": "#ffa600",
}
_STAGE_STYLES = {"image": "-", "text": "--", "joint": ":"}


def to_data_uri(fig: Figure) -> str:
    """PNG of ``fig`` as a base64 ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _run_colours(n: int) -> list[tuple[float, float, float, float]]:
    return [colormaps["tab10"](i % 10) for i in range(n)]


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    keys: Sequence[str],
    intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    title: str = "",
    ylabel: str = "",
) -> str:
    """Bars of ``keys`` (x groups) for each series (one colour per series), CI whiskers.

    Args:
        values: series label -> key -> value; missing keys leave a gap.
        intervals: series label -> key -> (low, high), drawn as error bars where present.
    """
    labels = list(values)
    width = 0.8 / max(1, len(labels))
    fig = Figure(figsize=(min(10.0, 2.0 + 1.7 * len(keys)), 3.8))
    ax = fig.subplots()
    x = np.arange(len(keys))
    for j, (label, colour) in enumerate(zip(labels, _run_colours(len(labels)))):
        series = values[label]
        ci = (intervals or {}).get(label, {})
        heights = np.array([series.get(k, np.nan) for k in keys], dtype=float)
        lows = np.array([ci[k][0] if k in ci else h for k, h in zip(keys, heights)])
        highs = np.array([ci[k][1] if k in ci else h for k, h in zip(keys, heights)])
        err = np.nan_to_num(np.vstack([heights - lows, highs - heights]))
        pos = x - 0.4 + width * (j + 0.5)
        ax.bar(
            pos,
            heights,
            width * 0.92,
            yerr=err,
            capsize=3,
            color=colour,
            label=label,
            error_kw={"elinewidth": 1, "ecolor": "#333"},
        )
        # values above the whiskers; with many series the table carries the numbers
        if len(labels) <= 2:
            for p, h, top in zip(pos, heights, highs):
                if np.isfinite(h):
                    ax.annotate(
                        num(h),
                        (p, top),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
    ax.set_xticks(x, [METRIC_LABELS.get(k, k).replace(" · ", "\n") for k in keys], fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if len(labels) > 1:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_data_uri(fig)


def pipeline_diagram(
    eranks: Mapping[str, float],
    intervals: Mapping[str, tuple[float, float]],
    ratios: Mapping[str, float],
) -> str:
    """The model's pipeline, vision encoder -> projector -> LLM (image / text / joint), each
    stage with its dataset eRank and interval, box height proportional to the eRank.

    Args:
        eranks: stage -> dataset eRank (stages may be missing).
        intervals: ``erank_<stage>`` -> (low, high).
        ratios: ``image_reduction_ratio`` / ``image_text_alignment`` where known.
    """
    fig = Figure(figsize=(10, 3.85))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.85)
    ax.axis("off")
    top = max([v for v in eranks.values() if np.isfinite(v)] or [1.0])
    # (x centre, y centre) of each box: the three LLM stages share one column
    places = {
        "vision": (1.2, 1.8),
        "projector": (4.0, 1.8),
        "image": (7.9, 2.95),
        "text": (7.9, 1.8),
        "joint": (7.9, 0.65),
    }
    names = {
        "vision": "Vision encoder",
        "projector": "Projector",
        "image": "LLM · image",
        "text": "LLM · text",
        "joint": "LLM · image + text",
    }
    ax.add_patch(
        FancyBboxPatch(
            (6.25, 0.1),
            3.3,
            3.65,
            boxstyle="round,pad=0.02,rounding_size=0.1",
            fc="#f4f6fa",
            ec="#c9d0dc",
            lw=1,
        )
    )
    ax.text(7.9, 3.72, "LLM, last layer", fontsize=8, color="#5b6475", ha="center", va="top")
    for stage, (cx, cy) in places.items():
        value = eranks.get(stage)
        width = 2.3 if stage in ("vision", "projector") else 2.9
        ax.add_patch(
            FancyBboxPatch(
                (cx - width / 2, cy - 0.45),
                width,
                0.9,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                fc="white",
                ec=_STAGE_COLOURS[stage],
                lw=2,
            )
        )
        if value is not None:
            # a bar inside the box shows eRanks on one common scale
            frac = value / top
            ax.add_patch(
                FancyBboxPatch(
                    (cx - width / 2 + 0.08, cy - 0.4),
                    (width - 0.16) * frac,
                    0.12,
                    boxstyle="square,pad=0",
                    fc=_STAGE_COLOURS[stage],
                    ec="none",
                )
            )
        label = f"eRank = {num(value)}" if value is not None else "not measured"
        ci = intervals.get(f"erank_{stage}")
        ax.text(cx, cy + 0.22, names[stage], ha="center", va="center", fontsize=9, weight="bold")
        ax.text(cx, cy - 0.03, label, ha="center", va="center", fontsize=9)
        if ci is not None:
            ax.text(
                cx,
                cy - 0.22,
                f"95% CI {interval(ci)}",
                ha="center",
                va="center",
                fontsize=7,
                color="#5b6475",
            )
    arrow = {"arrowstyle": "-|>", "mutation_scale": 14, "color": "#5b6475", "lw": 1.5}
    ax.add_patch(FancyArrowPatch((2.4, 1.8), (2.8, 1.8), **arrow))
    ax.add_patch(FancyArrowPatch((5.2, 1.8), (6.35, 1.8), **arrow))
    if "image_reduction_ratio" in ratios:
        ax.text(
            4.0,
            2.55,
            f"reduction ratio {num(ratios['image_reduction_ratio'])}",
            ha="center",
            fontsize=8,
            color="#5b6475",
        )
    if "image_text_alignment" in ratios:
        ax.text(
            7.9,
            0.02,
            f"alignment {num(ratios['image_text_alignment'])}",
            ha="center",
            va="bottom",
            fontsize=8,
            color="#5b6475",
        )
    return to_data_uri(fig)


def histograms(
    panels: Mapping[str, Sequence[float]],
    markers: Mapping[str, float],
) -> str:
    """One histogram per panel (title -> values); ``markers`` draws a vertical line at the
    dataset-level value of the same title."""
    fig = Figure(figsize=(5 * max(1, len(panels)), 3.2))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels))))
    for ax, (title, values) in zip(axes, panels.items()):
        ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#2f5d9e", alpha=0.85)
        if title in markers:
            ax.axvline(
                markers[title], color="#ef5675", lw=2, label=f"dataset value {num(markers[title])}"
            )
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(METRIC_LABELS.get(title, title) + f" (n = {len(values)})", fontsize=10)
        ax.set_ylabel("samples")
        ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


def spectra(panels: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Eigenvalue spectra on log axes: one panel per sample (title -> stage -> eigenvalues)."""
    fig = Figure(figsize=(4.2 * max(1, len(panels)), 3.4))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels)), sharey=True))
    for ax, (title, per_stage) in zip(axes, panels.items()):
        for stage, eig in per_stage.items():
            eig = np.asarray(eig, dtype=float)
            eig = eig[eig > 0]
            if eig.size:
                ax.plot(
                    np.arange(1, eig.size + 1), eig, label=stage, color=_STAGE_COLOURS.get(stage)
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("eigenvalue rank")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    axes[0].set_ylabel("normalised eigenvalue")
    axes[-1].legend(fontsize=8, frameon=False)
    return to_data_uri(fig)


def layer_curves(
    layers: Mapping[str, Mapping[str, Mapping[int, float]]],
    alignment: Mapping[str, Mapping[int, float]],
) -> str:
    """Per-layer dataset eRanks of the LLM stages (left) and per-layer alignment (right).

    Args:
        layers: series label -> stage -> {layer: eRank}.
        alignment: series label -> {layer: image-text alignment}.
    """
    fig = Figure(figsize=(11, 3.8))
    left, right = fig.subplots(1, 2)
    colours = dict(zip(layers, _run_colours(len(layers))))
    several = len(layers) > 1
    for label, per_stage in layers.items():
        for stage, curve in per_stage.items():
            name = f"{label} · {stage}" if several else stage
            # one run: colour = stage; several runs: colour = run, line style = stage
            colour = colours[label] if several else _STAGE_COLOURS.get(stage)
            left.plot(
                list(curve),
                list(curve.values()),
                _STAGE_STYLES.get(stage, "-"),
                marker="o",
                ms=3,
                color=colour,
                label=name,
            )
    for label, curve in alignment.items():
        right.plot(
            list(curve),
            list(curve.values()),
            marker="o",
            ms=3,
            color=colours.get(label, "#2f5d9e"),
            label=label,
        )
    left.set_title("Dataset eRank per LLM layer", fontsize=10)
    left.set_ylabel("eRank")
    right.set_title("Image-text alignment per layer", fontsize=10)
    right.set_ylabel("alignment")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, frameon=False, ncol=2 if several else 1)
    if several:
        right.legend(fontsize=8, frameon=False)
    return to_data_uri(fig)
