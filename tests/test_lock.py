"""One owner per run directory: a second start on the same --out fails fast, naming the
holder; a killed owner never blocks the resume; nothing is doubled, lost or foreign."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_align import score
from mm_align.pipeline.scorer import ScoreError
from mm_align.rundir import OWNER, RunLockedError, load_run, owned

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def _manifest_ids() -> list[str]:
    return _ids(SAMPLE / "metadata.jsonl")


def _cli(checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mm_align", "score", "--model", str(checkpoint), "--data",
            str(SAMPLE), "--out", str(out), "--batch-size", "1", "--no-progress", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the first run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_second_start_fails_fast_naming_the_holder_then_kill_9_and_resume(
    tmp_path, tiny_checkpoints, load_tiny
) -> None:
    """Two real processes on one --out: the second is refused while the first holds the run
    (frozen with SIGSTOP right after its first result, so the timing cannot race), then the
    first is killed with -9 and a resume ends with every sample exactly once."""
    run = tmp_path / "run"
    first = subprocess.Popen(_cli(tiny_checkpoints["llava"], run), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (run / "results.jsonl").exists() and (run / "results.jsonl").read_text().count("\n") >= 1,
                  first, "its first result")
        os.kill(first.pid, signal.SIGSTOP)
        started = time.monotonic()
        second = subprocess.run(_cli(tiny_checkpoints["llava"], run, "--resume"), env=_env(),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"in use by process {first.pid} on {socket.gethostname()}" in err[0]
        assert "choose another --out" in err[0]
        assert time.monotonic() - started < 60  # refused before any model load
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    before = _ids(run / "results.jsonl")
    assert 1 <= len(before) < 15 and (run / OWNER).exists()  # a stale owner note stays behind
    score(load_tiny("llava"), SAMPLE, run, batch_size=4, progress=False, resume=True)
    after = _ids(run / "results.jsonl")
    assert after[: len(before)] == before  # nothing rescored
    assert sorted(after) == sorted(_manifest_ids())  # nothing lost, doubled or foreign
    assert not (run / OWNER).exists() and load_run(run).n_samples == 15


def test_the_lock_is_held_for_the_whole_run_and_released_after_a_failure(tmp_path, load_tiny) -> None:
    adapter = load_tiny("llava")
    run = tmp_path / "run"
    with owned(run):
        owner = json.loads((run / OWNER).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
            score(adapter, SAMPLE, run, limit=2, progress=False)
        assert sorted(p.name for p in run.iterdir()) == [".mm-align.lock", OWNER]  # nothing written
    # A run that fails (strict, bad first sample) gives the directory back.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "gone", "image": "nowhere.jpg", "text": "Missing."}) + "\n")
    with pytest.raises(ScoreError, match="'gone'"):
        score(adapter, bad, tmp_path / "strict", strict=True, progress=False)
    with owned(tmp_path / "strict"):
        pass
    score(adapter, SAMPLE, run, limit=2, progress=False)
    assert _ids(run / "results.jsonl") == _manifest_ids()[:2]
    assert (run / "errors.jsonl").read_text() == ""  # written even when nothing failed
