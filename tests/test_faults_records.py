"""Hand-edited run records: a NaN or a string where a metric belongs, an id that is not of the
run's data, a record at a sample's place already taken. ``report``, ``compare`` and ``export``
read the run through one reader, which leaves each such record out and names it with its line,
so every count they show agrees with the rows they list."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from mm_align.pipeline.comparison import compare, format_comparison
from mm_align.pipeline.export import export_rows
from mm_align.rundir import load_run
from tests.helpers import parse
from tests.runfactory import make_run

N = 15


def _edited(tmp_path: Path) -> tuple[Path, set[str]]:
    """A 15-sample run (2 errors) whose results.jsonl was edited by hand; the ids of the
    records that must stay."""
    run = make_run(tmp_path / "edited", n=N, seed=3, layers=False)
    lines = (run / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    lines[3] = lines[3].replace(f'"erank_image": {json.dumps(records[3]["erank_image"])}', '"erank_image": NaN')
    lines[7] = json.dumps({**records[7], "erank_joint": "5.1"})
    foreign = {**records[0], "id": "not-in-the-data", "index": N + 5}
    twin = {**records[1], "id": "pasted", "index": records[1]["index"]}
    (run / "results.jsonl").write_text("\n".join([*lines, json.dumps(foreign), json.dumps(twin)]) + "\n")
    keep = {r["id"] for i, r in enumerate(records) if i not in (3, 7)}
    return run, keep


def test_each_bad_record_is_left_out_and_named_with_its_line(tmp_path) -> None:
    run_dir, keep = _edited(tmp_path)
    run = load_run(run_dir)
    assert set(run.ids()) == keep and len(run.ids()) == N - 2
    assert {e["id"] for e in run.errors} == {"bad0", "bad1"}
    assert run.n_samples == N - 2 and run.n_errors == 2
    by_line = {int(m.group(1)): p for p in run.problems if (m := re.match(r"results\.jsonl line (\d+): ", p))}
    assert set(by_line) == {4, 8, N + 1, N + 2}, run.problems
    assert "'erank_image' is nan, not a finite number; left out" in by_line[4]
    assert "'erank_joint' is '5.1', not a number" in by_line[8]
    assert "index 20 is beyond the run's 17 samples: not its data" in by_line[N + 1]
    assert "'pasted': index 1 is already sample" in by_line[N + 2]
    assert any(p.startswith("summary.json counts 15 in 'n_samples' but results.jsonl holds 13") for p in run.problems)


def test_an_unedited_run_has_no_problems(tmp_path) -> None:
    run = load_run(make_run(tmp_path / "clean", n=6, layers=False))
    assert run.problems == [] and run.n_samples == 6 and len(run.results) == 6


def test_a_bad_id_or_index_in_errors_is_left_out_too(tmp_path) -> None:
    run_dir = make_run(tmp_path / "run", n=5, n_errors=2, layers=False)
    with (run_dir / "errors.jsonl").open("a") as f:
        f.write(json.dumps({"id": 7, "index": 9, "stage": "load", "reason": "?"}) + "\n")
        f.write(json.dumps({"id": "x", "index": -1, "stage": "load", "reason": "?"}) + "\n")
    run = load_run(run_dir)
    assert {e["id"] for e in run.errors} == {"bad0", "bad1"} and run.n_errors == 2
    assert [p.split(":")[0] for p in run.problems] == ["errors.jsonl line 3", "errors.jsonl line 4"]


@pytest.mark.slow
def test_report_compare_and_export_count_what_they_list(tmp_path) -> None:
    from mm_align.api import write_report

    run_dir, keep = _edited(tmp_path)
    text = " ".join(parse(write_report(run_dir)).text)
    assert f"{N - 2} samples in results.jsonl order" in text and f"{N} samples" not in text
    for line in (4, 8, N + 1, N + 2):
        assert f"results.jsonl line {line}: " in text
    clean = make_run(tmp_path / "clean", n=N, seed=3, layers=False)
    doc, runs = compare([clean, run_dir], labels=["clean", "edited"])
    assert doc["runs"][1]["n_samples"] == N - 2 and len(doc["runs"][1]["problems"]) == 5
    assert doc["differences"][0]["n_shared"] == N - 2 and set(runs["edited"].ids()) == keep
    assert "problems in the runs' files:\n  edited: results.jsonl line 4: " in format_comparison(doc)
    assert [row["n"] for row in export_rows(runs)] == [N, N - 2]
    shutil.rmtree(clean)
