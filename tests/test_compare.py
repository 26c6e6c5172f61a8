"""Comparison of runs: paired statistics, data checks, self-contained output."""

from __future__ import annotations

import json
import shutil

import pytest

from mm_align import compare as compare_runs
from mm_align.cli import main
from mm_align.pipeline.comparison import DataMismatchError
from mm_align.stages import METRICS
from tests.helpers import parse
from tests.runfactory import make_run


def _doc(out):
    return json.loads((out / "compare.json").read_text())


def test_run_against_itself_gives_zero_difference(tmp_path):
    run = make_run(tmp_path / "a", n=20)
    copy = tmp_path / "b"
    shutil.copytree(run, copy)
    html = compare_runs([run, copy], tmp_path / "out")
    diff = _doc(tmp_path / "out")["differences"][0]
    assert diff["mode"] == "paired" and diff["n_shared"] == 20 and diff["same_data"]
    assert set(diff["metrics"]) == set(METRICS)
    for m in diff["metrics"].values():
        assert m["diff"] == 0.0 and m["ci95"] == [0.0, 0.0] and m["p_value"] == 1.0
    page = parse(html)
    assert page.external == [] and page.scripts == 0
    assert page.imgs and all(src.startswith("data:image/png") for src in page.imgs)
    text = " ".join(page.text)
    for key in METRICS:
        assert key in text


def test_large_shift_gives_interval_excluding_zero(tmp_path):
    a = make_run(tmp_path / "a", n=30, seed=1)
    b = make_run(tmp_path / "b", n=30, seed=1, joint_shift=0.5)
    compare_runs([a, b], tmp_path / "out", labels=["base", "shifted"])
    doc = _doc(tmp_path / "out")
    assert [r["label"] for r in doc["runs"]] == ["base", "shifted"]
    joint = doc["differences"][0]["metrics"]["erank_joint"]
    assert joint["diff"] > 0 and joint["ci95"][0] > 0 and joint["p_value"] < 0.01
    assert joint["a"] == pytest.approx(doc["runs"][0]["metrics"]["erank_joint"])
    assert doc["differences"][0]["metrics"]["erank_text"]["diff"] == 0.0


def test_pairing_matches_ids_not_positions(tmp_path):
    a = make_run(tmp_path / "a", n=12, seed=2, layers=False)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    lines = (b / "results.jsonl").read_text().splitlines()
    # b lost two samples to errors and wrote the rest in another order
    (b / "results.jsonl").write_text("\n".join(reversed(lines[2:])) + "\n")
    compare_runs([a, b], tmp_path / "out")
    diff = _doc(tmp_path / "out")["differences"][0]
    assert diff["n_shared"] == 10
    assert "2 result(s) not scored completely in both runs" in diff["note"]
    assert all(m["diff"] == pytest.approx(0.0, abs=1e-12) for m in diff["metrics"].values())


def test_each_run_with_samples_the_other_lacks_and_an_incomplete_record(tmp_path):
    a = make_run(tmp_path / "a", n=12, seed=2, layers=False)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    lines = (a / "results.jsonl").read_text().splitlines()
    (a / "results.jsonl").write_text("\n".join(lines[:10]) + "\n")  # a lacks the last 2
    broken = json.loads(lines[5])
    del broken["entropy_vision"]  # one incomplete record must drop that sample, not the stage
    (b / "results.jsonl").write_text("\n".join([*lines[2:5], json.dumps(broken), *lines[6:]]) + "\n")
    compare_runs([a, b], tmp_path / "out")
    diff = _doc(tmp_path / "out")["differences"][0]
    assert diff["n_shared"] == 7  # ids 2..9 less the incomplete one
    # a-only ids 0, 1; b-only ids 10, 11; the incomplete id in both runs: 10 + 10 - 2 * 7
    assert "6 result(s) not scored completely in both runs" in diff["note"]
    assert "erank_vision" in diff["metrics"] and "image_reduction_ratio" in diff["metrics"]


def test_different_data_is_refused_with_the_reason(tmp_path):
    a = make_run(tmp_path / "a", n=10, fingerprint="sha256:aaa", layers=False)
    b = make_run(tmp_path / "b", n=10, fingerprint="sha256:bbb", layers=False)
    with pytest.raises(DataMismatchError) as exc:
        compare_runs([a, b], tmp_path / "out")
    message = str(exc.value)
    assert "different data fingerprints" in message
    assert "sha256:aaa" in message and "sha256:bbb" in message
    assert "share 10 of 10 / 10 sample ids" in message
    assert "--allow-different-data" in message
    assert not (tmp_path / "out" / "compare.json").exists()

    compare_runs([a, b], tmp_path / "out", allow_different_data=True)
    diff = _doc(tmp_path / "out")["differences"][0]
    assert diff["mode"] == "paired" and not diff["same_data"]


def test_missing_fingerprint_is_refused(tmp_path):
    a = make_run(tmp_path / "a", n=6, layers=False)
    b = make_run(tmp_path / "b", n=6, layers=False, fingerprint=None)
    with pytest.raises(DataMismatchError, match="no data fingerprint recorded in 'b'"):
        compare_runs([a, b], tmp_path / "out")


def test_disjoint_samples_use_unpaired_bootstrap_and_say_so(tmp_path):
    a = make_run(tmp_path / "a", n=15, fingerprint="sha256:aaa", layers=False)
    b = make_run(
        tmp_path / "b",
        n=11,
        fingerprint="sha256:bbb",
        layers=False,
        ids=[f"other{i}" for i in range(11)],
        joint_shift=0.6,
    )
    html = compare_runs([a, b], tmp_path / "out", allow_different_data=True)
    diff = _doc(tmp_path / "out")["differences"][0]
    assert diff["mode"] == "unpaired" and diff["n_shared"] == 0
    assert diff["metrics"]["erank_joint"]["ci95"][0] > 0
    text = " ".join(parse(html).text)
    assert "unpaired bootstrap" in text and "(unpaired)" in text


def test_three_runs_and_cli(tmp_path, capsys):
    runs = [
        make_run(tmp_path / name, n=10, seed=3, joint_shift=s)
        for name, s in (("a", 0.0), ("b", 0.1), ("c", 0.2))
    ]
    out = tmp_path / "out"
    assert main(["compare", *map(str, runs), "--out", str(out), "--labels", "x,y,z"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "compare.html")
    doc = _doc(out)
    assert doc["baseline"] == "x"
    assert [d["label"] for d in doc["differences"]] == ["y", "z"]
    assert "Per-layer curves" in " ".join(parse(out / "compare.html").text)

    other = make_run(tmp_path / "d", n=10, fingerprint="sha256:zzz")
    assert main(["compare", str(runs[0]), str(other), "--out", str(out)]) == 1
    assert "different data fingerprints" in capsys.readouterr().err
    assert main(["compare", str(runs[0]), str(other), "--out", str(out), "--labels", "one"]) == 1
    assert "labels" in capsys.readouterr().err


def test_same_directory_names_get_distinct_labels(tmp_path):
    a = make_run(tmp_path / "x" / "run", n=5, layers=False)
    b = make_run(tmp_path / "y" / "run", n=5, layers=False)
    compare_runs([a, b], tmp_path / "out")
    assert [r["label"] for r in _doc(tmp_path / "out")["runs"]] == ["x/run", "y/run"]


def test_compare_page_shows_only_differing_provenance_and_folds_the_rest(tmp_path):
    a = make_run(tmp_path / "a", n=8, seed=3, layers=False)
    b = make_run(tmp_path / "b", n=8, seed=3, layers=False)
    summary = json.loads((b / "summary.json").read_text())
    summary["provenance"]["dtype"] = "bfloat16"
    (b / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    source = (tmp_path / "cmp" / "compare.html").read_text()
    equal = _doc(tmp_path / "cmp")["provenance"]["equal"]
    assert "dtype" not in equal and "versions.torch" in equal
    section = source[source.index('<section id="provenance">'):]
    section = section[:section.index("</section>")]
    folded = section[section.index("<details>"):section.index("</details>")]
    assert f"<summary>{len(equal)} fields equal in every run</summary>" in folded
    outside = section.replace(folded, "")
    assert ">dtype<" in outside and "bfloat16" in outside
    for name in equal:  # each shared field once, folded; no per-run provenance tables
        assert f"<code>{name}</code>" in folded and source.count(f"<code>{name}</code>") == 1, name
