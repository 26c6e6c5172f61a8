"""Data-parallel scoring: 2 CPU processes (gloo) under torchrun and accelerate launch must
give the run a single process gives, and resume across process counts."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mm_align import score
from tests.helpers import (
    FLOAT64,
    REBATCHED,
    SAMPLE,
    assert_same_run,
    assert_tree_close,
    read_jsonl,
    read_summary,
)


def _free_port() -> str:
    """A port nothing listens on now (a fixed one collides with other runs on the machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                 "--master-port", _free_port()],
    # accelerate's --cpu means ONE process (multi-CPU goes through mpirun); --multi_gpu is its
    # torchrun-style launcher, and it starts 2 CPU processes here since --device is cpu.
    "accelerate": [shutil.which("accelerate") or "accelerate", "launch", "--multi_gpu",
                   "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no", "--main_process_port", _free_port()],
}


def test_both_launchers_are_installed() -> None:
    """The slow tests below start real launchers: both must be there (the ``dev`` extra)."""
    assert importlib.util.find_spec("torch.distributed.run") is not None
    assert shutil.which("accelerate"), "accelerate's launcher is not on PATH"


def _launch(launcher: str, checkpoint: Path, out: Path, *extra: str) -> None:
    argv = [*LAUNCHERS[launcher], "-m", "mm_align", "score", "--model", str(checkpoint),
            "--data", str(SAMPLE), "--out", str(out), "--batch-size", "3", "--no-progress",
            *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def single(tmp_path_factory, load_tiny) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    score(load_tiny("qwen2_5_vl"), SAMPLE, out, batch_size=3, progress=False,
          controls=["shuffled"])
    return out


def _assert_same_run(merged: Path, single: Path) -> None:
    """The two processes' samples were batched differently from the single run's."""
    assert_same_run(merged, single, rel=REBATCHED)
    summary = read_summary(merged)
    assert summary["n_samples"] == 15
    assert summary["provenance"]["workers"] == 2
    assert not (merged / "shards").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_processes_equal_one(tmp_path, tiny_checkpoints, single, launcher) -> None:
    out = tmp_path / "run"
    _launch(launcher, tiny_checkpoints["qwen2_5_vl"], out, "--control", "shuffled")
    _assert_same_run(out, single)
    _assert_same_run(out / "controls" / "shuffled", single / "controls" / "shuffled")
    assert (out / "report.html").exists()


@pytest.mark.slow
def test_resume_across_process_counts(tmp_path, tiny_checkpoints, load_tiny, single) -> None:
    out = tmp_path / "run"
    _launch("torchrun", tiny_checkpoints["qwen2_5_vl"], out, "--limit", "7")
    assert len(read_jsonl(out / "results.jsonl")) == 7
    # Resume the rest in a single process, then nothing is left for a second distributed pass.
    score(load_tiny("qwen2_5_vl"), SAMPLE, out, batch_size=3, progress=False, resume=True)
    assert len(read_jsonl(out / "results.jsonl")) == 15
    _launch("torchrun", tiny_checkpoints["qwen2_5_vl"], out, "--resume")
    ids = [r["id"] for r in read_jsonl(out / "results.jsonl")]
    assert len(ids) == len(set(ids)) == 15


@pytest.mark.slow
def test_two_processes_keep_the_states_of_every_sample(tmp_path, tiny_checkpoints, load_tiny) -> None:
    """--metrics: both processes write into one states/ folder; the metrics equal a single
    process's (batches of 1, so no padding round-off tells the runs apart)."""
    options = ["--limit", "6", "--n-boot", "20", "--metrics", "cka,knn,mir,rankme", "--knn-k", "2",
               "--mir-samples", "4", "--layers", "all"]
    out = tmp_path / "run"
    _launch("torchrun", tiny_checkpoints["llava"], out, "--batch-size", "1", *options)
    one = score(load_tiny("llava"), SAMPLE, tmp_path / "one", batch_size=1, progress=False, limit=6,
                n_boot=20, metrics="cka,knn,mir,rankme", knn_k=2, mir_samples=4, layers="all")
    assert sorted(p.name for p in (out / "states").iterdir()) == [f"{i:08d}.safetensors" for i in range(6)]
    # torchrun runs each process on one thread: float64 sums in MIR round differently (~1e-11).
    assert_tree_close(read_summary(out)["metrics"], one.summary["metrics"], FLOAT64)
