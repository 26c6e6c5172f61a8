"""``ScoreResult`` in a notebook: repr, HTML summary, tidy frames and a plot hold the numbers
of ``summary.json`` (read here with the json module), and ``help(mm_align.score)`` documents
every option."""

from __future__ import annotations

import dataclasses
import json
import pydoc
from html.parser import HTMLParser

import pytest

import mm_align
from mm_align.config import ScoreConfig
from mm_align.options import field_doc
from mm_align.pipeline.result import ScoreResult
from mm_align.rundir import load_run
from tests.runfactory import make_run


@pytest.fixture
def result(tmp_path) -> tuple[ScoreResult, dict]:
    run = load_run(make_run(tmp_path / "r", n=9, n_errors=2, controls=["shuffled"]))
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    return ScoreResult(run.summary, run.results, run.errors, out=run.path), summary


def test_repr_names_model_counts_and_headline_metrics(result) -> None:
    res, summary = result
    text = repr(res)
    assert text.startswith("ScoreResult(model='/ckpt/tiny-llava', n=9, errors=2, ")
    lo, hi = summary["ci95"]["image_text_alignment"]
    assert f"image_text_alignment={summary['image_text_alignment']:.4g} [{lo:.4g}, {hi:.4g}]" in text
    assert f"erank_image={summary['erank']['image']:.4g}" in text and text.endswith(f"out='{res.out}')")


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])

    def handle_data(self, data):
        if self.rows and self.lasttag in ("td", "th"):
            self.rows[-1].append(data)


def test_html_repr_is_the_summary_table(result) -> None:
    res, summary = result
    cells = _Cells()
    cells.feed(res._repr_html_())
    table = {row[0]: row[1:] for row in cells.rows[1:]}
    assert cells.rows[0] == ["metric", "value", "95% lo", "95% hi"]
    assert float(table["erank_joint"][0]) == pytest.approx(summary["erank"]["joint"], rel=1e-3)
    assert float(table["erank_joint"][2]) == pytest.approx(summary["ci95"]["erank_joint"][1], rel=1e-3)


def test_summary_frame_is_tidy(result) -> None:
    res, summary = result
    frame = res.summary_frame()
    assert list(frame.columns) == ["metric", "value", "lo", "hi"]
    by_metric = frame.set_index("metric")
    for stage, value in summary["erank"].items():
        assert by_metric.loc[f"erank_{stage}", "value"] == value
        assert [by_metric.loc[f"erank_{stage}", "lo"], by_metric.loc[f"erank_{stage}", "hi"]] == summary["ci95"][f"erank_{stage}"]
    d = summary["controls"]["shuffled"]["image_text_alignment"]
    assert by_metric.loc["diff_shuffled_image_text_alignment", "value"] == d["diff"]


def test_layers_frame_names_the_embeddings(result) -> None:
    res, summary = result
    frame = res.layers_frame()
    assert list(frame.columns) == ["layer", "name", "stage", "eRank", "lo", "hi"]
    assert set(frame.loc[frame.layer == 0, "name"]) == {"embeddings"}
    assert set(frame.loc[frame.layer == 4, "name"]) == {"layer 4"}
    expected = {(int(layer), stage): value for stage in ("image", "text", "joint")
                for layer, value in summary["layers"][stage].items()}
    assert {(r.layer, r.stage): r.eRank for r in frame.itertuples()} == expected
    row = frame[(frame.layer == 8) & (frame.stage == "text")].iloc[0]
    assert [row.lo, row.hi] == summary["layers_ci95"]["text"]["8"]
    assert frame.layer.is_monotonic_increasing


def test_plot_draws_each_stage_per_layer(result, tmp_path) -> None:
    from matplotlib.figure import Figure

    res, summary = result
    fig = res.plot()
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["eRank joint"] == [summary["layers"]["joint"][k] for k in ("0", "4", "8", "12")]
    assert next(t.get_text() for t in ax.get_xticklabels()) == "emb"
    fig.savefig(tmp_path / "plot.png")


def test_plot_without_layers_shows_the_five_eranks(tmp_path) -> None:
    run = load_run(make_run(tmp_path / "flat", n=6, layers=False))
    fig = ScoreResult(run.summary, run.results, run.errors).plot()
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == [run.summary["erank"][s] for s in ("vision", "projector", "image", "text", "joint")]


def test_help_of_score_lists_every_option_with_its_doc() -> None:
    text = " ".join(pydoc.render_doc(mm_align.score, renderer=pydoc.plaintext).split())
    for f in dataclasses.fields(ScoreConfig):
        if f.name in ("model", "data", "out"):
            continue
        doc = " ".join(field_doc(ScoreConfig, f.name).replace("%%", "%").split())
        assert f"{f.name} (default {f.default!r}): {doc}" in text, f.name
    assert "n_boot (default 1000): bootstrap replicates of the 95% intervals" in text
