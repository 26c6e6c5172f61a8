"""``mm-align export``: the table read back by independent parsers (the csv module, pandas,
a LaTeX row parser), formula cells neutralised (issue 23's cases verbatim), compare and sweep
folders, digits and interval styles."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from mm_align.cli import main
from mm_align.pipeline.export_format import neutralise, render
from tests.runfactory import make_run


def read_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _export(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(["export", *args]) == 0
    return capsys.readouterr().out


def _sig(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant figures, written independently of the exporter."""
    return f"{float(f'{value:.{digits}g}'):.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


def test_csv_columns_name_level_and_method_and_skip_empty_ones(tmp_path, capsys) -> None:
    import pandas as pd

    run = make_run(tmp_path / "a", n=10, layers=True)
    summary = read_summary(run)
    text = _export(capsys, str(run), "--format", "csv")
    row = next(csv.DictReader(io.StringIO(text)))
    assert "revision" not in row and "erank_joint_lo" not in row  # all-empty / old names gone
    lo, hi = summary["ci95"]["erank_joint"]
    assert float(row["erank_joint_ci95_lo_bootstrap"]) == lo and float(row["erank_joint_ci95_hi_bootstrap"]) == hi
    for layer, value in summary["layers"]["text"].items():  # per-layer values with intervals
        assert float(row[f"erank_text_layer{layer}"]) == value
        assert float(row[f"erank_text_layer{layer}_ci95_hi_bootstrap"]) == summary["layers_ci95"]["text"][layer][1]
    frame = pd.read_csv(io.StringIO(text))
    assert not pd.api.types.is_float_dtype(frame["model"]) and frame.loc[0, "n"] == 10
    assert all(frame[c].notna().all() for c in frame.columns)  # no column is empty


def test_csv_formula_cells_are_neutralised(tmp_path, capsys) -> None:
    """Issue 23, item 1: a run folder and labels that a spreadsheet would evaluate."""
    evil = make_run(tmp_path / '=HYPERLINK("evil","y")', n=6, layers=False)
    rows = list(csv.reader(io.StringIO(_export(capsys, str(evil), "--format", "csv"))))
    assert rows[1][0] == '\'=HYPERLINK("evil","y")'
    other = make_run(tmp_path / "b", n=6, layers=False)
    rows = list(csv.reader(io.StringIO(
        _export(capsys, str(evil), str(other), "--format", "csv", "--labels", "=1+1,@SUM(A1)"))))
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'@SUM(A1)"]
    for row in rows[1:]:  # no cell of any column starts a formula
        assert not any(cell[:1] in ("=", "+", "@", "\t", "\r") for cell in row)
    cases = {"+1": "'+1", "-1": "-1", "-2.5e-3": "-2.5e-3", "-x": "'-x", "\tx": "'\tx", "\rx": "'\rx",
             "@x": "'@x", "a=b": "a=b", "": ""}
    assert {k: neutralise(k) for k in cases} == cases
    assert neutralise(-1.5) == -1.5  # numbers are numbers


def test_markdown_escapes_pipes_and_newlines(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "a", n=6, layers=False)
    rows = json.loads(_export(capsys, str(run), "--format", "json"))
    rows[0]["run"] = "two\nlines | and a pipe\r\nend"
    table = render(rows, "markdown").splitlines()
    assert len(table) == 3  # header, rule, one row
    assert table[2].startswith("| two<br>lines \\| and a pipe<br>end |")


def _latex_cells(text: str) -> list[list[str]]:
    body = text.split("\\midrule\n")[1].split("\\bottomrule", maxsplit=1)[0]
    return [[c.strip() for c in line.removesuffix("\\\\").split(" & ")] for line in body.strip().splitlines()]


def test_latex_table_parses_back_to_the_summary(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "my_run", n=12, layers=False, controls=["shuffled"])
    summary = read_summary(run)
    text = _export(capsys, str(run), "--format", "latex")
    assert text.startswith("\\begin{tabular}{llll") and "\\toprule" in text and text.rstrip().endswith("\\end{tabular}")
    header = text.splitlines()[2].removesuffix("\\\\").split(" & ")
    (cells,) = _latex_cells(text)
    assert len(header) == len(cells) and cells[0] == r"my\_run"
    by_name = dict(zip((h.strip() for h in header), cells))
    for name, key in (("eRank3 image", "image"), ("eRank5 joint", "joint")):
        value, (lo, hi) = summary["erank"][key], summary["ci95"][f"erank_{key}"]
        match = re.fullmatch(r"\$(-?[\d.]+)\^\{\+([\d.]+)\}_\{-([\d.]+)\}\$", by_name[name])
        assert match, by_name[name]
        assert match[1] == _sig(value)
        assert float(match[2]) == pytest.approx(hi - value, abs=0.006)
        assert float(match[3]) == pytest.approx(value - lo, abs=0.006)
    alignment = by_name["Alignment"]
    assert alignment.startswith(f"${_sig(summary['image_text_alignment'])}")
    p = summary["controls"]["shuffled"]["image_text_alignment"]["p_value"]
    assert ("$p < 0.001$" if p < 0.001 else f"$p = {p:.3f}$") in by_name[r"$\Delta$ Alignment shuffled"]
    brackets = _latex_cells(_export(capsys, str(run), "--format", "latex", "--intervals", "brackets"))[0]
    lo, hi = summary["ci95"]["image_text_alignment"]
    assert f"[{lo:.4f}, {hi:.4f}]$" in brackets[header.index("Alignment ") if "Alignment " in header else 10]


def test_digits_set_one_precision_for_eranks_and_ratios(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "a", n=8, layers=False)
    summary = read_summary(run)
    for digits in (3, 4, 6):
        row = _export(capsys, str(run), "--format", "markdown", "--digits", str(digits)).splitlines()[2]
        assert f"| {_sig(summary['erank']['text'], digits)} [" in row
        assert f"| {_sig(summary['image_text_alignment'], digits)} [" in row


def test_export_of_a_compare_folder(tmp_path, capsys) -> None:
    a = make_run(tmp_path / "a", n=12, seed=3, layers=False)
    b = make_run(tmp_path / "b", n=12, seed=3, layers=False, joint_shift=0.3)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (row,) = csv.DictReader(io.StringIO(_export(capsys, str(tmp_path / "cmp"), "--format", "csv")))
    assert row["run"] == "b" and row["against"] == "a" and row["mode"] == "paired" and row["n_shared"] == "12"
    sa, sb = read_summary(a), read_summary(b)
    # same samples, every one complete: the paired difference is b's value minus a's
    assert float(row["diff_erank_joint"]) == pytest.approx(sb["erank"]["joint"] - sa["erank"]["joint"], rel=1e-9)
    assert float(row["diff_erank_vision"]) == pytest.approx(0.0, abs=1e-9)
    joint = doc["differences"][0]["metrics"]["erank_joint"]
    assert [float(row["diff_erank_joint_ci95_lo_bootstrap"]), float(row["diff_erank_joint_ci95_hi_bootstrap"])] == joint["ci95"]
    assert float(row["diff_erank_joint_p"]) == joint["p_value"]
    table = _export(capsys, str(tmp_path / "cmp"), "--format", "markdown").splitlines()
    assert table[0].startswith("| run | against | mode | n_shared | Δ eRank1 vision")


def _fake_sweep(root: Path, steps: dict[str, int]) -> None:
    """A finished sweep folder as ``mm-align sweep`` leaves it: members' runs and sweep.json."""
    for n, name in enumerate(steps):
        make_run(root / "members" / name, n=8, seed=n)
    members = [{"name": name, "run": f"members/{name}", "step": step} for name, step in steps.items()]
    (root / "sweep.json").write_text(json.dumps({"members": members, "x": "step"}))
    (root / "config.json").write_text(json.dumps({"command": "sweep", "config": {}}))


def test_export_of_a_sweep_has_step_and_layers(tmp_path, capsys) -> None:
    _fake_sweep(tmp_path / "s", {"ckpt-2": 2, "ckpt-10": 10})
    rows = list(csv.DictReader(io.StringIO(_export(capsys, str(tmp_path / "s"), "--format", "csv"))))
    assert [(r["run"], r["step"]) for r in rows] == [("ckpt-2", "2"), ("ckpt-10", "10")]
    member = read_summary(tmp_path / "s" / "members" / "ckpt-10")
    assert float(rows[1]["erank_joint_layer12"]) == member["layers"]["joint"]["12"]
    assert float(rows[1]["image_text_alignment_layer4"]) == member["layers"]["image_text_alignment"]["4"]
    shutil.rmtree(tmp_path / "s" / "members" / "ckpt-2" / "controls", ignore_errors=True)


def test_render_refuses_unknown_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown export format 'xlsx'; choose from csv, markdown, json, latex"):
        render([], "xlsx")
    with pytest.raises(ValueError, match="unknown interval style"):
        render([], "latex", intervals="sd")
    with pytest.raises(ValueError, match="digits must be >= 1"):
        render([], "latex", digits=0)
