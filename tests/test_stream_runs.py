"""Runs over the layouts of tests/layouts.py: the same pairs scored from a manifest folder,
parquet and WebDataset shards give the same ids and numbers and ``compare`` pairs them
without ``allow_different_data``; a resumed stream decodes only the samples not yet done;
two data-parallel processes over shards give exactly the single process's run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import mm_align
from mm_align.cli import main
from tests.layouts import PAIRS, pair_id, write_layouts
from tests.test_distributed import LAUNCHERS

IDS = [pair_id(image.read_bytes(), text) for image, text in PAIRS]
STAGES = ("vision", "projector", "image", "text", "joint")


def test_two_workers_split_a_shard_stream_without_overlap_or_loss(tmp_path) -> None:
    """The data side of a data-parallel run, without a model: each worker's share of the
    shard stream, by sample index, is disjoint from the other's and together they are all."""
    from mm_align.data import open_dataset
    from mm_align.pipeline.distributed import Workers

    shards = write_layouts(tmp_path)["webdataset"]
    shares = [[s.id for s in open_dataset(str(shards)) if Workers(rank, 2).owns(s.index)] for rank in (0, 1)]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sorted(IDS) and len(shares[0]) == (len(IDS) + 1) // 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("streams")
    assert main(["tiny", "qwen2_5_vl", str(root / "tiny"), "--seed", "0"]) == 0
    return root / "tiny", write_layouts(root / "data")


def _results(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]


def _same_numbers(a: list[dict], b: list[dict]) -> None:
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b, strict=True):
        for stage in STAGES:
            assert x[f"erank_{stage}"] == pytest.approx(y[f"erank_{stage}"], rel=1e-6)


@pytest.mark.slow  # whole runs of a tiny model
def test_three_layouts_score_the_same_and_compare_pairs_them(tmp_path, setup) -> None:
    checkpoint, layouts = setup
    adapter = mm_align.load_vlm(checkpoint)
    runs = {}
    for name, data in layouts.items():
        runs[name] = tmp_path / name
        mm_align.score(adapter, str(data), runs[name], batch_size=4, progress=False, n_boot=20)
    first = _results(runs["manifest"])
    assert [r["id"] for r in first] == IDS
    for name in ("parquet", "webdataset"):
        _same_numbers(_results(runs[name]), first)
    assert _results(runs["webdataset"])[6]["source"] == "shard-00001.tar key 000006"
    mm_align.compare(list(runs.values()), tmp_path / "cmp")  # no allow_different_data
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [(d["mode"], d["same_data"], d["n_shared"]) for d in doc["differences"]] == [
        ("paired", True, len(PAIRS))] * 2


@pytest.mark.slow  # whole runs of a tiny model
def test_a_resumed_stream_decodes_only_what_is_left(tmp_path, setup, monkeypatch) -> None:
    checkpoint, layouts = setup
    adapter = mm_align.load_vlm(checkpoint)
    out = tmp_path / "run"
    mm_align.score(adapter, str(layouts["webdataset"]), out, limit=6, batch_size=4, progress=False, n_boot=20)
    from mm_align.data import samples

    decoded = []
    real = samples.load_rgb
    monkeypatch.setattr(samples, "load_rgb", lambda ref, **k: decoded.append(ref) or real(ref, **k))
    mm_align.score(adapter, str(layouts["webdataset"]), out, resume=True, batch_size=4, progress=False,
                   n_boot=20)
    assert len(decoded) == len(PAIRS) - 6
    assert [r["id"] for r in _results(out)] == IDS


@pytest.mark.slow  # whole runs of a tiny model
def test_two_processes_over_shards_equal_one(tmp_path, setup) -> None:
    checkpoint, layouts = setup
    shards = f"{layouts['webdataset']}/shard-{{00000..00002}}.tar"
    single = tmp_path / "single"
    mm_align.score(mm_align.load_vlm(checkpoint), shards, single, batch_size=3, progress=False, n_boot=20)
    merged = tmp_path / "merged"
    argv = [*LAUNCHERS["torchrun"], "-m", "mm_align", "score", "--model", str(checkpoint), "--data", shards, "--out",
            str(merged), "--batch-size", "3", "--n-boot", "20", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_numbers(_results(merged), _results(single))
    a, b = (json.loads((run / "summary.json").read_text()) for run in (merged, single))
    assert a["n_samples"] == b["n_samples"] == len(PAIRS) and a["provenance"]["workers"] == 2
    for stage, value in b["erank"].items():
        assert a["erank"][stage] == pytest.approx(value, rel=1e-6)
