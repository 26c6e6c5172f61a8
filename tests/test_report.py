"""The run report: one self-contained, parseable page that names every metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mm_align.cli import main
from mm_align.report import write_report
from mm_align.report.fmt import num
from mm_align.rundir import RunDirError, load_run
from mm_align.stages import METRICS
from tests.helpers import parse, read_jsonl, read_summary
from tests.runfactory import NASTY_TEXT, make_run


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("runs") / "main", n=30, controls=["shuffled", "rotate90"]
    )


@pytest.mark.slow
def test_report_is_self_contained_and_names_every_metric(full_run):
    out = write_report(full_run)
    assert out == full_run / "report.html"
    page = parse(out)
    text = " ".join(page.text)
    assert page.scripts == 1  # the per-sample table's inline script (external: none)
    assert page.external == []
    assert page.imgs and all(src.startswith("data:image/") for src in page.imgs)
    assert page.svgs == 1  # the per-sample scatter
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert set(page.links) <= set(page.ids), "a link leads nowhere"
    for key in METRICS:
        assert key in text
    for heading in (
        "Model and data provenance",
        "Pipeline stages",
        "Per-sample ratios",
        "Eigenvalue spectra",
        "Per-layer eRank",
        "Control runs",
        "Errors",
        "Samples with the lowest and highest alignment",
        "Per-sample eRanks: image (eRank3) against text (eRank4)",
    ):
        assert heading in text
    assert "values are meaningless" in text  # the model note of a tiny checkpoint
    assert "sha256:0f1e2d3c" in text  # data provenance
    assert "control: shuffled" in text and "control: rotate90" in text
    assert "cannot identify image file" in text  # errors table


@pytest.mark.slow
def test_report_shows_summary_numbers_with_four_significant_digits(full_run):
    summary = read_summary(full_run)
    text = write_report(full_run).read_text()
    assert f"{summary['image_text_alignment']:.4f}" in text
    lo, hi = summary["ci95"]["image_text_alignment"]
    assert f"[{lo:.4f}, {hi:.4f}]" in text
    assert f"{summary['erank_mean']['joint']:.2f}" in text  # Algorithm (b) shown


@pytest.mark.slow
def test_sample_text_is_escaped_and_missing_image_gets_placeholder(tmp_path):
    # s000 carries the nasty text and a missing image; make it the lowest alignment
    run = make_run(tmp_path / "r", n=8, layers=False)
    lines = read_jsonl(run / "results.jsonl")
    lines[0]["image_text_alignment"] = -1.0
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    source = write_report(run).read_text()
    assert "<script>alert" not in source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in source
    assert NASTY_TEXT in " ".join(parse(run / "report.html").text)
    assert "image file missing" in source


@pytest.mark.slow
def test_missing_optional_parts_do_not_crash(tmp_path):
    run = make_run(
        tmp_path / "bare",
        n=6,
        layers=False,
        n_errors=0,
        images=False,
        model_note=None,
        fingerprint=None,
    )
    (run / "config.json").unlink()
    with (run / "results.jsonl").open("a") as f:
        f.write('{"id": "cut", "entropy_vi')  # a run killed mid-write
    page = parse(write_report(run))
    text = " ".join(page.text)
    assert "No sample failed" in text
    assert "Per-layer eRank" not in text and "Control runs" not in text
    assert "results.jsonl line 7" in text
    assert "no image file" in text
    assert all(src.startswith("data:") for src in page.imgs)


def test_summary_only_run_still_reports(tmp_path):
    run = make_run(tmp_path / "r", n=5)
    for name in ("results.jsonl", "errors.jsonl"):
        (run / name).unlink()
    (run / "controls").mkdir()
    (run / "controls" / "broken").mkdir()  # a control interrupted before its summary
    text = " ".join(parse(write_report(run)).text)
    assert "No scored samples" in text
    assert "errors.jsonl is missing" in text
    assert "control 'broken' skipped" in text


def test_run_without_any_scored_sample(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"n_samples": 0, "n_errors": 3, "provenance": {}}))
    assert "Image-text alignment" in " ".join(parse(write_report(run)).text)


@pytest.mark.slow
def test_top_level_model_note_is_shown(tmp_path):
    run = make_run(tmp_path / "r", n=5, layers=False, note_at_top=True, model_note="NOTE-XYZ")
    assert load_run(run).model_note == "NOTE-XYZ"
    assert "NOTE-XYZ" in write_report(run).read_text()


def test_layers_ignore_non_stage_keys(full_run):
    layers = load_run(full_run).layers()
    assert set(layers) == {"image", "text", "joint"}
    assert list(layers["image"]) == [0, 4, 8, 12]


def test_missing_summary_fails_clearly(tmp_path):
    run = make_run(tmp_path / "r", n=4, layers=False)
    (run / "summary.json").unlink()
    with pytest.raises(RunDirError, match=r"no summary\.json"):
        write_report(run)
    with pytest.raises(RunDirError, match="no such run directory"):
        load_run(tmp_path / "nope")


@pytest.mark.slow
def test_cli_report(tmp_path, capsys):
    run = make_run(tmp_path / "r", n=5, layers=False)
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    assert (run / "report.html").is_file()
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "no such run directory" in capsys.readouterr().err


def _decode_thumbnail(uri: str):
    import base64
    import io

    from PIL import Image

    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_thumbnail_honours_exif_orientation(tmp_path):
    from PIL import Image

    from mm_align.report.thumbs import thumbnail_data_uri

    # stored landscape, left half red / right half blue; orientation 6 = rotate 90° clockwise
    # to display, so the upright picture is portrait with red on top
    stored = Image.new("RGB", (120, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "portrait.jpg", exif=exif)

    thumb = _decode_thumbnail(thumbnail_data_uri(tmp_path / "portrait.jpg", size=96))
    assert thumb.size == (32, 96)
    top, bottom = thumb.getpixel((16, 10)), thumb.getpixel((16, 85))
    assert top[0] > 200 and top[2] < 60, top  # red
    assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue


def _scatter_links(source: str) -> list[str]:
    svg = source[source.index("<svg") : source.index("</svg>")]
    return re.findall(r'<a href="#(sample-\d+)"><title>([^<]*)</title>', svg)


@pytest.mark.slow
def test_every_scatter_point_links_to_its_sample_row(full_run):
    source = write_report(full_run).read_text()
    results = load_run(full_run).results
    links = _scatter_links(source)
    assert [anchor for anchor, _ in links] == [f"sample-{i}" for i in range(len(results))]
    for anchor, title in links:
        record = results[int(anchor.removeprefix("sample-"))]
        assert title.startswith(f"{record['id']}: ")  # the tooltip names the sample
        for key in ("erank_image", "erank_text", "image_text_alignment"):
            assert num(record[key]) in title
        row = re.search(rf'<tr id="{anchor}">(.*?)</tr>', source, re.S).group(1)
        assert f"<code>{record['id']}</code>" in row
        assert 'class="thumb small"' in row  # the thumbnail, or its placeholder


@pytest.mark.slow
def test_large_run_links_a_spread_of_samples_including_both_ends(tmp_path, monkeypatch):
    from mm_align.report import run_page

    monkeypatch.setattr(run_page, "MAX_LINKED", 5)
    run = make_run(tmp_path / "r", n=30, layers=False)
    source = write_report(run).read_text()
    results = load_run(run).results
    linked = {int(a.removeprefix("sample-")) for a, _ in _scatter_links(source)}
    assert len(linked) == 5 and len(re.findall(r'<tr id="sample-\d+">', source)) == 5
    by_alignment = sorted(range(30), key=lambda i: results[i]["image_text_alignment"])
    assert {by_alignment[0], by_alignment[-1]} <= linked
    assert "5 of 30 points" in source


@pytest.mark.slow
def test_per_layer_bands_come_from_the_summary(tmp_path):
    run = make_run(tmp_path / "r", n=8)
    banded = write_report(run).read_text()
    assert "Shaded bands: 95% bootstrap intervals from summary.json" in banded
    summary = read_summary(run)
    del summary["layers_ci95"]
    (run / "summary.json").write_text(json.dumps(summary))
    assert "summary.json has no layers_ci95" in write_report(run).read_text()


def test_layer_intervals_keep_only_well_formed_pairs(tmp_path):
    from mm_align.report.blocks import layer_intervals

    run = make_run(tmp_path / "r", n=6)
    summary = read_summary(run)
    summary["layers_ci95"] = {
        "image": {"0": [1.0, 2.0], "4": [3.0, 1.0], "8": [None, 2.0], "x": [1, 2]},
        "text": "not a table",
        "image_text_alignment": {"12": [0.7, 0.9]},
        "vision": {"0": [1.0, 2.0]},  # not a swept stage
    }
    (run / "summary.json").write_text(json.dumps(summary))
    assert layer_intervals(load_run(run)) == {
        "image": {0: (1.0, 2.0)},
        "image_text_alignment": {12: (0.7, 0.9)},
    }


def _scatter_caption(page) -> str:
    return next(t for t in page.text if t.startswith("One point per sample"))


def test_scatter_caption_names_the_diagonal_only_when_drawn(tmp_path):
    """The caption must match the figure: the dashed eRank3 = eRank4 line lies outside the
    axes when every eRank4 exceeds every eRank3, and the caption then says so."""
    run = make_run(tmp_path / "overlap", n=12, layers=False)
    assert "dashed: eRank3 = eRank4" in _scatter_caption(parse(write_report(run)))
    apart = make_run(tmp_path / "apart", n=12, layers=False)
    lines = [json.loads(line) for line in (apart / "results.jsonl").read_text().splitlines()]
    for r in lines:
        r["erank_text"] += 1000.0  # far above every eRank3
    (apart / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    caption = _scatter_caption(parse(write_report(apart)))
    assert "dashed" not in caption and "lies outside the plotted ranges" in caption
