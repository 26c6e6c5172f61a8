"""The report's figures: distinct colours, legends off the data, clipped spectra, interval
bands on per-layer curves, and a scatter whose points link into the page."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from mm_align.report import plots
from mm_align.report.html import svg_figure
from mm_align.stages import STAGES

# Machado et al. (2009) colour-vision-deficiency simulation at full severity, linear RGB.
_CVD = {
    "normal": np.eye(3),
    "protan": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
         [-0.003882, -0.048116, 1.051998]]
    ),
    "deutan": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
         [-0.011820, 0.042940, 0.968881]]
    ),
    "tritan": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
         [0.004733, 0.691367, 0.303900]]
    ),
}


def _lab(colour: str, vision: str) -> np.ndarray:
    """CIELAB (D65) of ``colour`` as seen with ``vision``."""
    srgb = np.array(to_rgb(colour))
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(_CVD[vision] @ linear, 0, 1)
    xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    ) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


@pytest.mark.parametrize("vision", list(_CVD))
def test_stage_colours_stay_apart_for_colour_blind_readers(vision):
    assert set(plots.STAGE_COLOURS) == set(STAGES)
    for (a, ca), (b, cb) in itertools.combinations(plots.STAGE_COLOURS.items(), 2):
        distance = np.linalg.norm(_lab(ca, vision) - _lab(cb, vision))
        assert distance > 20, f"{a} and {b} are {distance:.1f} apart in CIELAB ({vision})"


def test_first_run_colours_stay_apart_for_colour_blind_readers():
    # a run and up to three controls or compared runs
    for vision in _CVD:
        for ca, cb in itertools.combinations(plots.run_colours(4), 2):
            assert np.linalg.norm(_lab(ca, vision) - _lab(cb, vision)) > 15, (ca, cb, vision)


def _spectrum(decay: float, floor: float = 0.0) -> list[float]:
    eig = np.arange(1, 65, dtype=float) ** -decay
    eig /= eig.sum()
    eig[40:] = floor  # a rank-deficient tail: round-off, not signal
    return eig.tolist()


def test_spectra_draw_each_stage_in_its_colour():
    fig = plots.spectra({"one": {s: _spectrum(1.0 + k / 4) for k, s in enumerate(STAGES)}})
    lines = fig.axes[0].get_lines()
    assert {line.get_label(): to_hex(line.get_color()) for line in lines} == {
        s: c.lower() for s, c in plots.STAGE_COLOURS.items()
    }


def test_spectra_stop_at_the_smallest_value_that_carries_mass():
    panels = {
        "round-off tail": {"vision": _spectrum(1.5, floor=1e-17), "text": _spectrum(1.0)},
        "clean": {"vision": _spectrum(2.0)},
    }
    low, high = plots.spectrum_limits(panels)
    values = [x for per in panels.values() for v in per.values() for x in v]
    top = max(values)
    smallest_kept = min(x for x in values if x > 1e-6 * top)
    assert top * plots.SPECTRUM_RANGE / 1.5 <= low <= smallest_kept and high >= top
    fig = plots.spectra(panels)
    for ax in fig.axes:
        assert ax.get_ylim() == pytest.approx((low, high))
        for line in ax.get_lines():
            assert min(line.get_ydata()) >= low  # the 1e-17 tail is not drawn
    # a spectrum that never falls below 1e-3 gets an axis that ends near 1e-3, not at 1e-6
    low_clean, _ = plots.spectrum_limits({"p": {"vision": [0.5, 0.3, 0.199, 0.001]}})
    assert low_clean == pytest.approx(0.001 / 1.5)


def _legends(fig: Figure) -> list:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]


def _figures() -> dict[str, Figure]:
    layers = {
        s: {0: 10.0 + k, 4: 20.0 + k, 8: 30.0 + k} for k, s in enumerate(("image", "text", "joint"))
    }
    align = {0: 0.8, 4: 0.85, 8: 0.9}
    values = {"main": {"erank_vision": 18.0, "erank_text": 70.0}, "control": {"erank_vision": 17.0}}
    return {
        "histograms": plots.histograms(
            {
                "image_text_alignment": list(np.linspace(0.6, 0.95, 40)),
                "image_reduction_ratio": [0.3] * 9,
            },
            {"image_text_alignment": 0.9, "image_reduction_ratio": 0.3},
        ),
        "spectra": plots.spectra({t: {s: _spectrum(1.2) for s in STAGES} for t in "abc"}),
        "layers, one run": plots.layer_curves({"run": layers}, {"run": align}),
        "layers, two runs": plots.layer_curves(
            {"a": layers, "b": layers}, {"a": align, "b": align}
        ),
        "bars": plots.grouped_bars(values, ["erank_vision", "erank_text"]),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_legends_sit_off_every_plotting_area(name):
    fig = _drawn(_figures()[name])
    legends = _legends(fig)
    assert legends, "each of these figures names its series"
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            overlap = Bbox.intersection(box, ax.bbox)
            assert overlap is None or overlap.width * overlap.height < 1.0, (name, ax.get_title())


def test_layer_curves_shade_the_recorded_intervals():
    layers = {"image": {0: 10.0, 4: 20.0, 8: 30.0}, "text": {0: 40.0, 4: 50.0, 8: 60.0}}
    intervals = {
        "image": {0: (9.0, 11.0), 4: (18.0, 22.0), 8: (27.0, 33.0)},
        "image_text_alignment": {0: (0.7, 0.9), 8: (0.8, 0.95)},
    }
    align = {0: 0.8, 4: 0.85, 8: 0.9}
    fig = plots.layer_curves({"run": layers}, {"run": align}, {"run": intervals})
    left, right = fig.axes[:2]
    (band,) = left.collections  # the image stage only: text has no interval
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(9.0) and ys.max() == pytest.approx(33.0)
    assert to_hex(band.get_facecolor()[0][:3]) == plots.STAGE_COLOURS["image"].lower()
    (align_band,) = right.collections
    assert align_band.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.95)
    bare = plots.layer_curves({"run": layers}, {"run": {0: 0.8}})
    assert not any(ax.collections for ax in bare.axes)


def test_scatter_links_points_and_embeds_the_rest():
    urls = ["#sample-0", None, "#sample-2", None, "#sample-4"]
    # a sample without a colour value (no alignment) is still drawn, in grey
    colour = [0.5, 0.6, 0.7, 0.8, float("nan")]
    fig = plots.sample_scatter([1, 2, 3, 4, 5], [2, 2, 4, 5, 4], colour, urls)
    svg = plots.to_inline_svg(fig, {"#sample-2": "s2 <&> eRank"})
    links = re.findall(r'<a href="([^"]*)">', svg)
    assert links == ["#sample-0", "#sample-2", "#sample-4"]
    assert "target=" not in svg and "<metadata" not in svg and svg.startswith("<svg")
    assert "<title>s2 &lt;&amp;&gt; eRank</title>" in svg
    # the two unlinked points are one embedded bitmap, not vector marks
    assert re.search(r'<image [^>]*xlink:href="data:image/png;base64,', svg)
    assert 'role="img"' in svg_figure(svg, "scatter")


def test_inline_svg_may_not_reach_outside_the_page():
    with pytest.raises(ValueError, match="outside the page"):
        svg_figure('<svg><image href="https://example.org/x.png"/></svg>', "x")
    with pytest.raises(ValueError, match="outside the page"):
        svg_figure("<svg><rect style=\"fill:url('//example.org/p')\"/></svg>", "x")
    with pytest.raises(ValueError, match="<svg>"):
        svg_figure("<img src='data:,'>", "x")
