"""The run folder contract: one kind (``config.json["command"]``), one summary schema, one
owner per output folder for every command that writes one."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import mm_align
from mm_align.rundir import (
    LOCK,
    OWNER,
    SCHEMA_VERSION,
    RunDirError,
    RunLockedError,
    load_run,
    owned,
    read_summary,
    run_kind,
    series_kind,
    write_summary,
)
from tests.geometry_models import build_llama, write_texts

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FRAME = {"n_samples": 1, "n_errors": 0, "provenance": {}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("owner")
    return {"vlm": tiny_checkpoints["llava"], "texts": write_texts(root / "texts.txt"),
            "llama": build_llama(root / "llama-a", 16, 1), "llama2": build_llama(root / "llama-b", 16, 1, seed=1)}


# Every command that writes a folder, started on ``out`` with the smallest inputs.
COMMANDS: dict[str, Callable[[Path, dict[str, Path]], object]] = {
    "score": lambda out, i: mm_align.score(i["vlm"], SAMPLE, out, limit=1, progress=False),
    "diff-erank": lambda out, i: mm_align.diff_erank(i["llama"], i["texts"], out, limit=1, progress=False),
    "info-gain": lambda out, i: mm_align.info_gain(i["llama"], i["texts"], out, limit=1, progress=False),
    "attribution": lambda out, i: mm_align.attribution(i["llama"], i["texts"], out, limit=1, progress=False),
    "scaling": lambda out, i: mm_align.scaling([i["llama"], i["llama2"]], i["texts"], out, limit=1,
                                               progress=False),
    "sweep": lambda out, i: mm_align.sweep(i["vlm"], SAMPLE, out, limit=1, progress=False),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_second_owner_is_refused_with_one_wording(command, inputs, tmp_path) -> None:
    out = tmp_path / "out"
    with owned(out):
        with pytest.raises(RunLockedError) as caught:
            COMMANDS[command](out, inputs)
        assert sorted(p.name for p in out.iterdir()) == [LOCK, OWNER]  # nothing written
    wording = (rf"{re.escape(str(out))} is in use by process {os.getpid()} on \S+ \(started [0-9TZ:-]+\); "
               r"wait for that run to end \(or stop it\), or choose another --out")
    assert re.fullmatch(wording, str(caught.value))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_foreign_folder_is_refused_with_one_wording(command, inputs, tmp_path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.txt").write_text("not a run")
    with pytest.raises(RunDirError) as caught:
        COMMANDS[command](out, inputs)
    assert str(caught.value) == (f"{out} is not empty and is not an mm-align run (no config.json; it "
                                 "holds holiday.txt); choose a new or empty --out")
    assert sorted(p.name for p in out.iterdir()) == [LOCK, "holiday.txt"]  # the lock is released


def test_a_run_of_another_command_is_refused(inputs, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"command": "diff-erank", "identity": {}}))
    with pytest.raises(RunDirError, match="holds a diff-erank run, not a score run"):
        COMMANDS["score"](out, inputs)


def test_the_kind_is_the_recorded_command_or_inferred_for_older_folders(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"command": "info-gain"}))
    assert run_kind(tmp_path) == "info-gain"
    (tmp_path / "config.json").write_text(json.dumps({"command": "render"}))
    with pytest.raises(RunDirError, match="unknown command 'render'; this mm-align writes score, "):
        run_kind(tmp_path)
    old = tmp_path / "old"  # no command recorded: the files say it
    old.mkdir()
    assert run_kind(old) == "score"
    write_summary(old / "summary.json", {**FRAME, "diff_erank": {"paper": 1.0, "mean": 1.0}})
    assert run_kind(old) == "diff-erank" and load_run(old).command == "diff-erank"
    (old / "sweep.json").write_text("{}")
    assert run_kind(old) == series_kind(old) == "sweep"


def test_the_summary_schema_is_stamped_and_checked(tmp_path) -> None:
    path = tmp_path / "summary.json"
    written = write_summary(path, {**FRAME, "erank": {"vision": 3.0}})
    assert written["schema"] == SCHEMA_VERSION == json.loads(path.read_text())["schema"]
    assert read_summary(path) == written
    path.write_text(json.dumps({**FRAME, "schema": 99}))
    with pytest.raises(RunDirError, match=r"summary schema 99 is not one this mm-align reads \(it reads 1\)"):
        read_summary(path)
    path.write_text(json.dumps(FRAME))  # written before the field existed: the same layout
    assert read_summary(path)["schema"] == SCHEMA_VERSION
    with pytest.raises(ValueError, match="a summary needs n_errors, provenance"):
        write_summary(path, {"n_samples": 1})


def test_the_reader_takes_one_spelling_of_intervals(tmp_path) -> None:
    write_summary(tmp_path / "summary.json", {**FRAME, "ci95": {"erank_vision": [1.0, 2.0], "text": [3.0, 4.0]}})
    assert load_run(tmp_path).ci() == {"erank_vision": (1.0, 2.0)}
