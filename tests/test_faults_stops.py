"""Runs stopped from outside or by the disk: Ctrl-C and SIGTERM sent to a real ``mm-align score``
process, a full disk (ENOSPC) while records, the summary or the report are written. Each ends
with one line naming what happened (the file, for a write), no temporary file or owner note
left behind, and a resume that records every sample exactly once."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_align.cli import main
from mm_align.cli.stops import run_command
from mm_align.rundir import OWNER, owned
from mm_align.rundir.layout import write_atomic
from tests.helpers import ROOT, SAMPLE, read_jsonl
from tests.runfactory import make_run
from tests.test_faults import _each_once, score

INTERRUPTED = "mm-align: interrupted; resume with --resume"
IDS = [r["id"] for r in read_jsonl(SAMPLE / "metadata.jsonl")]


def _disk_full_for(monkeypatch, prefix: str) -> None:
    """``Path.write_text`` of a file whose name starts with ``prefix`` fails as on a full disk:
    ``write()`` raises ENOSPC, naming no file."""
    real = Path.write_text

    def write_text(self: Path, *args, **kwargs):
        if self.name.startswith(prefix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == OWNER)


def test_sigterm_unwinds_the_owner_and_ends_in_one_line(tmp_path, capsys) -> None:
    def command(args: argparse.Namespace) -> int:
        with owned(tmp_path / "run"):
            assert (tmp_path / "run" / OWNER).exists()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the signal arrives at once; never reached
        return 0

    started = time.monotonic()
    assert run_command(command, argparse.Namespace(verbose=0, resume=False)) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 20
    assert capsys.readouterr().err == INTERRUPTED + "\n"
    assert _leftovers(tmp_path / "run") == []
    # the handler is gone again, and -v shows the traceback (the exception is not caught)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_command(interrupted, argparse.Namespace(verbose=1, resume=False))
    assert run_command(interrupted, argparse.Namespace(verbose=0)) == 128 + signal.SIGINT
    assert capsys.readouterr().err == "mm-align: interrupted\n"  # no --resume to offer


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch, capsys) -> None:
    _disk_full_for(monkeypatch, ".summary.json.")
    with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device: '.*summary\.json'"):
        write_atomic(tmp_path / "summary.json", "{}")
    assert list(tmp_path.iterdir()) == []
    run = make_run(tmp_path / "run", n=4, layers=False)
    monkeypatch.undo()
    _disk_full_for(monkeypatch, ".report.html.")
    assert main(["report", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mm-align: error: [Errno 28] No space left on device: '{run / 'report.html'}'"]
    assert _leftovers(run) == [] and not (run / "report.html").exists()


def test_a_killed_runs_temporaries_are_removed_by_the_next_owner(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    left = [".summary.json.4242.tmp", ".report.html.4242.tmp", ".config.json.17.tmp"]
    for name in [*left, ".notes.tmp", "mine.tmp"]:  # the last two are not ours: kept
        (run / name).write_text("x")
    (run / OWNER).write_text('{"pid": 4242}')
    with owned(run):
        assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == [".notes.tmp", "mine.tmp"]
    assert not (run / OWNER).exists()


@pytest.mark.slow
def test_a_full_disk_while_appending_records_names_results_jsonl(tmp_path, load_tiny, monkeypatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("mm_align.rundir.writers.os.fsync", full)
    run = tmp_path / "run"
    with pytest.raises(OSError, match=rf"No space left on device: '{run / 'results.jsonl'}'"):
        score(load_tiny("llava"), SAMPLE, run, limit=2)
    assert _leftovers(run) == []


@pytest.mark.slow
def test_a_report_that_fails_after_a_run_exits_1_in_one_line(tmp_path, tiny_checkpoints, monkeypatch, capsys) -> None:
    _disk_full_for(monkeypatch, ".report.html.")
    run = tmp_path / "run"
    argv = ["score", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--limit", "2",
            "--out", str(run), "--no-progress"]
    assert main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mm-align:")]
    assert lines[-1].startswith(f"mm-align: error: could not write the report of {run} (OSError: [Errno 28]")
    assert "Traceback" not in "\n".join(lines)
    assert {r["id"] for r in read_jsonl(run / "results.jsonl")} == set(IDS[:2])
    assert _leftovers(run) == []


def _started(out: Path, checkpoint: Path, *extra: str) -> subprocess.Popen:
    """``mm-align score`` in its own process, once it has recorded its first sample."""
    argv = [sys.executable, "-m", "mm_align", *extra, "score", "--model", str(checkpoint), "--data",
            str(SAMPLE), "--out", str(out), "--batch-size", "1", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (out / "results.jsonl").exists() or not (out / "results.jsonl").read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no sample recorded in 300 s"
        time.sleep(0.2)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_score_ends_in_one_line_and_resumes_to_exactly_the_data(
    stop, tmp_path, tiny_checkpoints, load_tiny
) -> None:
    run = tmp_path / "run"
    proc = _started(run, tiny_checkpoints["llava"])
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + stop, err
    assert err.rstrip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err
    assert _leftovers(run) == []
    recorded = {r["id"] for r in read_jsonl(run / "results.jsonl")}
    assert 0 < len(recorded) < len(IDS)
    score(load_tiny("llava"), SAMPLE, run, resume=True)
    results, errors = _each_once(run, IDS)
    assert errors == {} and recorded <= set(results)


@pytest.mark.slow
def test_verbose_shows_the_interrupts_traceback(tmp_path, tiny_checkpoints) -> None:
    proc = _started(tmp_path / "run", tiny_checkpoints["llava"], "-v")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" in err and "KeyboardInterrupt" in err
