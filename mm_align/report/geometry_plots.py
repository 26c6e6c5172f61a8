"""Figures of the companion paper's tools: the scaling fit, the information-gain curve and
the attribution curves over k. Rendering only: every value comes from the run's files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, NullFormatter, ScalarFormatter

from mm_align.report.plots import RUN_COLOURS, _legend_right

__all__ = ["attribution_figure", "gain_figure", "scaling_figure"]

STAT_LABELS = {
    "entropy": "mean entropy H (nats)",
    "normalized_entropy": "mean H / ln d",
    "erank": "dataset eRank exp(mean H)",
}
SELECTOR_STYLES = {"lasso": ("#0072B2", "-", "o"), "attention": ("#D55E00", "--", "s"),
                   "random": ("#7f7f7f", ":", "^")}
MODE_ORDER = ("keep_only", "delete")
METRIC_LABELS = {"kl": "KL(p_full || p_intervened) (nats)", "top1": "top-1 agreement"}


def scaling_figure(doc: Mapping[str, Any]) -> Figure:
    """One log-log panel per fitted statistic: the models as labelled points, the fit line
    and its 95 % bootstrap band (``doc`` is ``scaling.json``)."""
    fits = doc["fits"]
    fig = Figure(figsize=(4.2 * len(fits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(fits), squeeze=False)[0]
    sizes = [m["parameters"] for m in doc["models"]]
    for ax, (name, fit) in zip(axes, fits.items()):
        band = fit["band"]
        ax.fill_between(band["sizes"], band["low"], band["high"], color=RUN_COLOURS[0],
                        alpha=0.15, lw=0, label="95% band")
        ax.plot(band["sizes"], band["fit"], "-", color=RUN_COLOURS[0],
                label=f"fit: b = {fit['b']:+.3f}, R² = {fit['r2']:.3f}")
        ax.plot(sizes, fit["values"], "o", color=RUN_COLOURS[1], ms=6, label="models")
        for m, x, y in zip(doc["models"], sizes, fit["values"]):
            ax.annotate(m["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        _log_log(ax)
        ax.set_title(STAT_LABELS.get(name, name), fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return fig


def _log_log(ax: Any) -> None:
    """Log axes labelled at decades (x) and in plain numbers (y, which spans little)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(LogFormatterSciNotation())
    ax.xaxis.set_minor_formatter(NullFormatter())
    for formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        formatter(ScalarFormatter())
    ax.set_xlabel("parameters P")
    ax.grid(alpha=0.3, which="both")


def gain_figure(mean_curve: Sequence[float], counts: Sequence[int],
                examples: Mapping[str, Sequence[float]]) -> Figure:
    """Information gain per token position: a few texts' curves (thin) and the mean over
    the texts long enough to have that position (thick), with the count on a second axis."""
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.subplots()
    for (label, curve), colour in zip(examples.items(), RUN_COLOURS[1:]):
        ax.plot(range(len(curve)), curve, "-", lw=0.9, alpha=0.7, color=colour, label=label)
    ax.plot(range(len(mean_curve)), mean_curve, "-", lw=2.2, color=RUN_COLOURS[0],
            label="mean over texts")
    twin = ax.twinx()
    twin.bar(range(len(counts)), counts, color="#9aa5b8", alpha=0.25, width=1.0)
    twin.set_ylabel("texts with this position", fontsize=8)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlabel("token position (0 = first token, BOS where the tokenizer adds one)")
    ax.set_ylabel("information gain (nats)")
    ax.grid(alpha=0.3)
    _legend_right(ax)
    return fig


def attribution_figure(curves: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]
                       ) -> Figure:
    """Curves over k of each selector: a row per intervention (keep-only, delete-k), a
    column per measure (KL, top-1). ``curves[measure][mode][selector] = {k: mean}``."""
    present = next(iter(curves.values()))
    modes = [m for m in MODE_ORDER if m in present] + [m for m in present if m not in MODE_ORDER]
    fig = Figure(figsize=(10, 3.4 * len(modes)), layout="constrained")
    axes = fig.subplots(len(modes), len(curves), squeeze=False)
    for col, (measure, per_mode) in enumerate(curves.items()):
        for row, mode in enumerate(modes):
            ax = axes[row][col]
            for selector, curve in _ordered(per_mode[mode]).items():
                colour, style, marker = SELECTOR_STYLES.get(selector, ("#000000", "-", "o"))
                ks = [int(k) for k in curve]
                ax.plot(ks, list(curve.values()), style, marker=marker, color=colour,
                        label=selector)
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.set_xlabel("k (tokens selected)")
            ax.set_ylabel(METRIC_LABELS.get(measure, measure), fontsize=8)
            ax.set_title(f"{mode}", fontsize=10)
            ax.grid(alpha=0.3)
    _legend_right(axes[0][-1], title="selector", title_fontsize=8)
    return fig


def _ordered(per_selector: Mapping[str, Any]) -> dict[str, Any]:
    """Selectors in the order of :data:`SELECTOR_STYLES` (summary.json sorts its keys)."""
    known = [s for s in SELECTOR_STYLES if s in per_selector]
    return {s: per_selector[s] for s in known + [s for s in per_selector if s not in known]}
