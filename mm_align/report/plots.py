"""Matplotlib figures for the report and the comparison page.

Figures are built with :class:`matplotlib.figure.Figure` directly, never pyplot: no global
figure registry to leak memory across a long run, and no ``matplotlib.use()`` that would
change the backend of a caller's interactive session. Every function returns its
:class:`Figure`; :func:`to_data_uri` turns it into an embedded PNG and :func:`to_inline_svg`
into SVG markup whose points can link into the page.

Every function takes its series as ``label -> values`` so the same figure serves one run
(report), a run and its controls (report), or several runs (compare). Legends sit to the
right of their axes, never on the data.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import MaxNLocator

from mm_align.report.fmt import METRIC_LABELS, interval, num

__all__ = [
    "RUN_COLOURS",
    "SPECTRUM_RANGE",
    "STAGE_COLOURS",
    "STAGE_STYLES",
    "diagonal_shown",
    "grouped_bars",
    "histograms",
    "layer_curves",
    "pipeline_diagram",
    "run_colours",
    "sample_scatter",
    "spectra",
    "spectrum_limits",
    "to_data_uri",
    "to_inline_svg",
    "trend_figure",
]

_DPI = 110

# The one stage -> colour map of every figure, from the Okabe-Ito palette: the five stay
# apart (CIELAB distance > 20) for normal vision and simulated protan-, deutan- and tritanopia.
STAGE_COLOURS = {
    "vision": "#56B4E9",  # sky blue
    "projector": "#0072B2",  # blue
    "image": "#D55E00",  # vermillion
    "text": "#CC79A7",  # reddish purple
    "joint": "#000000",  # black
}
# Line styles repeat the stage in a second channel, for greyscale prints.
STAGE_STYLES = {"vision": "-", "projector": "-.", "image": "-", "text": "--", "joint": ":"}
# Runs (a run and its controls, or compared runs): Okabe-Ito in its usual order.
RUN_COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
SPECTRUM_RANGE = 1e-6
"""Spectra show eigenvalues down to this fraction of the largest: below it a covariance
eigenvalue is float round-off (1e-17 in float64), not signal."""

_NEUTRAL = "#9aa5b8"


def run_colours(n: int) -> list[str]:
    """Colours of ``n`` runs, cycling through :data:`RUN_COLOURS`."""
    return [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(n)]


def to_data_uri(fig: Figure) -> str:
    """PNG of ``fig`` as a base64 ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_inline_svg(fig: Figure, titles: Mapping[str, str] | None = None) -> str:
    """``fig`` as an ``<svg>`` element to paste into an HTML page.

    Links set on artists (``set_urls``) become ``<a href>`` elements that navigate in the
    same page (matplotlib opens them in a new tab); ``titles`` maps a link target to the
    tooltip shown on hover. The XML prologue and the RDF metadata (which names external
    vocabularies) are dropped; text is drawn as paths, so no font is fetched.
    """
    buf = io.StringIO()
    fig.savefig(buf, format="svg", dpi=_DPI, bbox_inches="tight", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    titles = titles or {}

    def link(match: re.Match[str]) -> str:
        title = titles.get(match.group(1))
        return f'<a href="{match.group(1)}">' + (f"<title>{escape(title)}</title>" if title else "")

    return re.sub(r'<a xlink:href="([^"]*)"(?: target="_blank")?>', link, svg)


def _legend_right(ax: Axes, **kwargs: Any) -> None:
    """The axes' legend outside, to the right of the plotting area, off the data."""
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        frameon=False,
        fontsize=8,
        **kwargs,
    )


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    keys: Sequence[str],
    intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    title: str = "",
    ylabel: str = "",
) -> Figure:
    """Bars of ``keys`` (x groups) for each series (one colour per series), CI whiskers.

    Args:
        values: series label -> key -> value; missing keys leave a gap.
        intervals: series label -> key -> (low, high), drawn as error bars where present.
    """
    labels = list(values)
    width = 0.8 / max(1, len(labels))
    fig = Figure(figsize=(min(10.0, 2.0 + 1.7 * len(keys)), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(keys))
    for j, (label, colour) in enumerate(zip(labels, run_colours(len(labels)))):
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
        _legend_right(ax)
    return fig


_PLACES = {
    # (x centre, y centre) of each box: the three LLM stages share one column
    "vision": (1.2, 1.8),
    "projector": (4.0, 1.8),
    "image": (7.9, 2.95),
    "text": (7.9, 1.8),
    "joint": (7.9, 0.65),
}
_BOX_NAMES = {
    "vision": "Vision encoder",
    "projector": "Projector",
    "image": "LLM · image",
    "text": "LLM · text",
    "joint": "LLM · image + text",
}
_MUTED = "#5b6475"


def _stage_box(
    ax: Axes,
    stage: str,
    value: float | None,
    top: float,
    ci: tuple[float, float] | None,
) -> None:
    """One stage's box: name, eRank, interval, and a bar of length eRank / ``top``."""
    cx, cy = _PLACES[stage]
    width = 2.3 if stage in ("vision", "projector") else 2.9
    colour = STAGE_COLOURS[stage]
    box = "round,pad=0.02,rounding_size=0.08"
    ax.add_patch(
        FancyBboxPatch((cx - width / 2, cy - 0.45), width, 0.9, boxstyle=box, fc="white",
                       ec=colour, lw=2)
    )
    if value is not None:
        # a bar inside the box shows eRanks on one common scale
        ax.add_patch(
            FancyBboxPatch((cx - width / 2 + 0.08, cy - 0.4), (width - 0.16) * value / top, 0.12,
                           boxstyle="square,pad=0", fc=colour, ec="none")
        )
    label = f"eRank = {num(value)}" if value is not None else "not measured"
    ax.text(cx, cy + 0.22, _BOX_NAMES[stage], ha="center", va="center", fontsize=9, weight="bold")
    ax.text(cx, cy - 0.03, label, ha="center", va="center", fontsize=9)
    if ci is not None:
        ax.text(cx, cy - 0.22, f"95% CI {interval(ci)}", ha="center", va="center", fontsize=7,
                color=_MUTED)


def pipeline_diagram(
    eranks: Mapping[str, float],
    intervals: Mapping[str, tuple[float, float]],
    ratios: Mapping[str, float],
) -> Figure:
    """The model's pipeline, vision encoder -> projector -> LLM (image / text / joint), each
    stage with its dataset eRank and interval, and a bar in its box as long as the eRank.

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
    ax.add_patch(
        FancyBboxPatch((6.25, 0.1), 3.3, 3.65, boxstyle="round,pad=0.02,rounding_size=0.1",
                       fc="#f4f6fa", ec="#c9d0dc", lw=1)
    )
    ax.text(7.9, 3.72, "LLM, last layer", fontsize=8, color=_MUTED, ha="center", va="top")
    for stage in _PLACES:
        _stage_box(ax, stage, eranks.get(stage), top, intervals.get(f"erank_{stage}"))
    arrow: dict[str, Any] = {"arrowstyle": "-|>", "mutation_scale": 14, "color": _MUTED, "lw": 1.5}
    ax.add_patch(FancyArrowPatch((2.4, 1.8), (2.8, 1.8), **arrow))
    ax.add_patch(FancyArrowPatch((5.2, 1.8), (6.35, 1.8), **arrow))
    if "image_reduction_ratio" in ratios:
        ax.text(4.0, 2.55, f"reduction ratio {num(ratios['image_reduction_ratio'])}",
                ha="center", fontsize=8, color=_MUTED)
    if "image_text_alignment" in ratios:
        ax.text(7.9, 0.02, f"alignment {num(ratios['image_text_alignment'])}", ha="center",
                va="bottom", fontsize=8, color=_MUTED)
    return fig


def histograms(
    panels: Mapping[str, Sequence[float]],
    markers: Mapping[str, float],
) -> Figure:
    """One histogram per panel (title -> values); ``markers`` draws a vertical line at the
    dataset-level value of the same title, named in a legend beside the panel."""
    fig = Figure(figsize=(5.6 * max(1, len(panels)), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels))))
    for ax, (title, values) in zip(axes, panels.items()):
        ax.hist(values, bins=min(40, max(5, len(values) // 3)), color=_NEUTRAL, ec="white",
                lw=0.5, label="samples")
        if title in markers:
            ax.axvline(markers[title], color="#000000", lw=2, ls="--",
                       label=f"dataset value\n{num(markers[title])}")
        _legend_right(ax)
        ax.set_title(METRIC_LABELS.get(title, title) + f" (n = {len(values)})", fontsize=10)
        ax.set_ylabel("samples")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig


def spectrum_limits(panels: Mapping[str, Mapping[str, Sequence[float]]]) -> tuple[float, float]:
    """The y range of :func:`spectra`: from the smallest eigenvalue that carries mass (at
    least :data:`SPECTRUM_RANGE` of the largest) to the largest, with a little margin."""
    values = np.concatenate(
        [np.asarray(eig, dtype=float).ravel() for per in panels.values() for eig in per.values()]
        or [np.empty(0)]
    )
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return 1e-3, 1.0
    top = float(values.max())
    shown = values[values >= top * SPECTRUM_RANGE]
    return float(shown.min()) / 1.5, top * 1.5


def spectra(panels: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Eigenvalue spectra on log axes: one panel per sample (title -> stage -> eigenvalues).

    Eigenvalues below :data:`SPECTRUM_RANGE` of the largest are not drawn (round-off).
    """
    fig = Figure(figsize=(3.9 * max(1, len(panels)) + 1.2, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels)), sharey=True))
    low, high = spectrum_limits(panels)
    for ax, (title, per_stage) in zip(axes, panels.items()):
        for stage, values in per_stage.items():
            eig = np.asarray(values, dtype=float)
            rank = np.arange(1, eig.size + 1)
            keep = np.isfinite(eig) & (eig >= low)
            if keep.any():
                ax.plot(rank[keep], eig[keep], STAGE_STYLES.get(stage, "-"), label=stage,
                        color=STAGE_COLOURS.get(stage), lw=1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("eigenvalue rank")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    axes[0].set_ylim(low, high)
    axes[0].set_ylabel("normalised eigenvalue")
    if axes[-1].get_legend_handles_labels()[0]:
        _legend_right(axes[-1], title="stage", title_fontsize=8)
    return fig


def _curve(
    ax: Axes,
    curve: Mapping[int, float],
    band: Mapping[int, tuple[float, float]] | None,
    style: str,
    colour: str,
    label: str,
) -> None:
    """One per-layer curve, with its 95 % interval as a shaded band where one is given."""
    ax.plot(list(curve), list(curve.values()), style, marker="o", ms=3, color=colour, label=label)
    layers = [layer for layer in curve if band and layer in band]
    if band and layers:
        ax.fill_between(layers, [band[k][0] for k in layers], [band[k][1] for k in layers],
                        color=colour, alpha=0.15, lw=0)


def layer_curves(
    layers: Mapping[str, Mapping[str, Mapping[int, float]]],
    alignment: Mapping[str, Mapping[int, float]],
    intervals: Mapping[str, Mapping[str, Mapping[int, tuple[float, float]]]] | None = None,
) -> Figure:
    """Per-layer dataset eRanks of the LLM stages (left) and per-layer alignment (right).

    Args:
        layers: series label -> stage -> {layer: eRank}.
        alignment: series label -> {layer: image-text alignment}.
        intervals: series label -> stage or ``"image_text_alignment"`` -> {layer: (low,
            high)}, drawn as shaded bands around the curves where present.
    """
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    colours = dict(zip(layers, run_colours(len(layers))))
    several = len(layers) > 1
    intervals = intervals or {}
    for label, per_stage in layers.items():
        bands = intervals.get(label, {})
        for stage, curve in per_stage.items():
            # one run: colour = stage; several runs: colour = run, line style = stage
            colour = colours[label] if several else STAGE_COLOURS.get(stage, _NEUTRAL)
            name = f"{label} · {stage}" if several else stage
            _curve(left, curve, bands.get(stage), STAGE_STYLES.get(stage, "-"), colour, name)
    for label, curve in alignment.items():
        band = intervals.get(label, {}).get("image_text_alignment")
        _curve(right, curve, band, "-", colours.get(label, RUN_COLOURS[0]), label)
    left.set_title("Dataset eRank per LLM layer", fontsize=10)
    left.set_ylabel("eRank")
    right.set_title("Image-text alignment per layer", fontsize=10)
    right.set_ylabel("alignment")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
    _legend_right(left)
    if several:
        _legend_right(right)
    return fig


def sample_scatter(
    x: Sequence[float],
    y: Sequence[float],
    colour: Sequence[float],
    urls: Sequence[str | None],
    labels: tuple[str, str, str] = ("x", "y", "colour"),
) -> Figure:
    """One point per sample at (``x``, ``y``), coloured by ``colour`` (colour-blind-safe
    cividis, with a colour bar; grey where ``colour`` is NaN), on a dashed x = y line.

    Points with a URL become links in :func:`to_inline_svg`; the others are drawn as one
    embedded bitmap, so a run of many thousand samples keeps a small page.
    """
    xs, ys, c = (np.asarray(v, dtype=float) for v in (x, y, colour))
    linked = np.array([u is not None for u in urls], dtype=bool)
    known = np.isfinite(c)
    norm = Normalize(*(c[known].min(), c[known].max()) if known.any() else (0.0, 1.0))
    cmap = colormaps["cividis"]
    faces = np.where(known[:, None], cmap(norm(np.nan_to_num(c))), to_rgba(_NEUTRAL))
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    style: dict[str, Any] = {"s": 28 if xs.size <= 500 else 12, "edgecolors": "#333333", "linewidths": 0.4}
    if (~linked).any():
        ax.scatter(xs[~linked], ys[~linked], c=faces[~linked], rasterized=True, **style)
    # linked points on top of everything, grid lines included: nothing may catch their clicks
    points = ax.scatter(xs[linked], ys[linked], c=faces[linked], zorder=3, **style)
    points.set_urls([u for u in urls if u is not None])
    limits = ax.get_xlim(), ax.get_ylim()
    ax.axline((0.0, 0.0), slope=1.0, ls="--", color=_NEUTRAL, lw=1, zorder=0)
    ax.set(xlim=limits[0], ylim=limits[1])  # the reference line must not stretch the axes
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    if known.any():
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=labels[2])
    return fig


def diagonal_shown(fig: Figure) -> bool:
    """Whether the x = y line of :func:`sample_scatter`'s figure crosses its plotted area
    (it does not when the x and y ranges do not overlap), so a caption names it only then."""
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    return max(x0, y0) < min(x1, y1)


def trend_figure(
    x: Sequence[float],
    ticks: Sequence[str] | None,
    series: Mapping[str, Sequence[float | None]],
    intervals: Mapping[str, Sequence[tuple[float, float] | None]],
    xlabel: str,
) -> Figure:
    """One panel per metric: its value for each member of a series against ``x`` (step or
    position), with 95 % intervals as error bars.

    Args:
        x: the members' positions on the x axis. ticks: their labels (None: the numbers).
        series: metric key -> one value per member (None where a member has none).
        intervals: metric key -> one ``(low, high)`` per member, or None.
    """
    keys = list(series)
    cols = min(4, len(keys))
    fig = Figure(figsize=(3.2 * cols, 2.9 * math.ceil(len(keys) / cols)), layout="constrained")
    axes = fig.subplots(math.ceil(len(keys) / cols), cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        points = [(xi, v, ci) for xi, v, ci in zip(x, series[key], intervals.get(key, [None] * len(x)))
                  if v is not None]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        err = np.array([[y - ci[0], ci[1] - y] if ci else [0.0, 0.0] for _, y, ci in points]).T
        stage = key.removeprefix("erank_")
        colour = STAGE_COLOURS.get(stage, RUN_COLOURS[0])
        ax.errorbar(xs, ys, yerr=err if points else None, fmt="-o", ms=4, capsize=3, color=colour)
        ax.set_title(METRIC_LABELS.get(key, key), fontsize=9)
        if ticks is not None:
            ax.set_xticks(list(x), list(ticks), rotation=30, ha="right", fontsize=7)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return fig
