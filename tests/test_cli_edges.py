"""The command line's edges (issue 26): config files and @args, flag suggestions, model-path
errors, reusable run folders, failed samples said last, one-line warnings, sweep steps,
tiny text models."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from mm_align.cli import build_parser, main
from mm_align.cli.args import parse
from mm_align.cli.checkpoint import check_model
from mm_align.cli.console import EXIT_SAMPLES_FAILED, failures_line, one_line_warnings
from mm_align.config import DEFAULT_STEP_FROM, SweepConfig
from mm_align.metrics.bootstrap import format_p, small_sample_note
from mm_align.rundir import RunDirError, check, owned
from tests.helpers import FLOAT64, SAMPLE, assert_same_run, loaded_after


def _parse(argv: list[str]):
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    return parse(parser, commands, argv)


# ---- flags, config files, @args ------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--batchsize", "--batch"])
def test_unknown_or_abbreviated_flag_is_refused_with_a_suggestion(flag, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--model", "m", "--data", "d", "--out", "o", flag, "4"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "mm-align score: error" in err
    assert "did you mean --batch-size?" in err


def test_no_help_shows_a_doubled_percent() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    assert "%%" not in parser.format_help()
    for name, sub in commands.items():
        assert "%%" not in sub.format_help(), name
        assert not sub.allow_abbrev, name


def test_config_file_gives_defaults_and_flags_override(tmp_path) -> None:
    (tmp_path / "run.yaml").write_text("model: runs/tiny\ndata: data/sample\nout: runs/a\n"
                                       "batch-size: 3\nlayers: all\ncontrols: [shuffled, rotate90]\n")
    args = _parse(["score", "--config", str(tmp_path / "run.yaml"), "--batch-size", "2"])
    assert (args.model, args.data, args.out, args.batch_size, args.layers) == \
        ("runs/tiny", "data/sample", "runs/a", 2, "all")
    assert args.control == ["shuffled", "rotate90"]
    (tmp_path / "run.json").write_text(json.dumps({"command": "score", "identity": {},
                                                   "config": {"model": "m", "data": "d", "out": "o",
                                                              "n_boot": 7, "projector": None}}))
    args = _parse(["score", "--config", str(tmp_path / "run.json")])
    assert (args.model, args.n_boot) == ("m", 7)
    (tmp_path / "args.txt").write_text("score --model m  # the model\n--data d --out o --seed 5\n")
    assert _parse([f"@{tmp_path / 'args.txt'}"]).seed == 5


def test_config_file_errors_are_one_line(tmp_path, capsys) -> None:
    (tmp_path / "bad.yaml").write_text("model: m\nbatch_sise: 3\n")
    assert main(["score", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "has no option 'batch_sise' (did you mean batch_size?)" in capsys.readouterr().err
    (tmp_path / "d.json").write_text(json.dumps({"command": "diff-erank", "config": {}, "identity": {}}))
    assert main(["score", "--config", str(tmp_path / "d.json")]) == 2
    assert "records a diff-erank run, not a score run" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("model: [m\n")
    assert main(["score", "--config", str(tmp_path / "broken.yaml")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["score", "--config", str(tmp_path / "missing.yaml")]) == 2


# ---- model paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["./no-such-model", "/no/such/model", "a/b/c", "bad name!"])
def test_missing_checkpoint_folder(model) -> None:
    with pytest.raises(ValueError, match="no such checkpoint folder"):
        check_model(model)


def test_hub_id_offline_not_in_cache(monkeypatch, tmp_path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="tiny-qwn is not in the local cache"):
        check_model("tiny-qwn")
    check_model(str(tmp_path))  # a folder is fine
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_model("org/name")  # online, the hub answers for itself


@pytest.mark.slow
def test_missing_model_is_said_before_torch_loads(tmp_path) -> None:
    code = ("import contextlib, io; from mm_align.cli import main\nerr = io.StringIO()\n"
            "with contextlib.redirect_stderr(err): rc = main(['score', '--model', './no-such-model', "
            f"'--data', 'd', '--out', {str(tmp_path / 'o')!r}])\n"
            "assert rc == 1 and 'no such checkpoint folder' in err.getvalue(), err.getvalue()")
    assert not loaded_after(code) & {"torch", "transformers"}


# ---- run folders -----------------------------------------------------------------------------


def _run_folder(root: Path, results: str = "") -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"command": "score", "config": {}, "identity": {"seed": 0}}))
    (root / "results.jsonl").write_text(results)
    (root / "errors.jsonl").write_text("")
    return root


def test_a_run_without_records_is_reused_with_other_settings(tmp_path) -> None:
    empty = _run_folder(tmp_path / "empty")
    check(empty, "score", {"seed": 1}, resume=False)  # nothing recorded: any new run may take it
    with pytest.raises(RunDirError, match="holds a score run, not a diff-erank run"):
        check(empty, "diff-erank", {}, resume=False)  # another command's folder stays refused
    scored = _run_folder(tmp_path / "scored", '{"id": "a"}\n')
    with pytest.raises(RunDirError, match="--resume to continue it, --overwrite"):
        check(scored, "score", {"seed": 0}, resume=False)
    with pytest.raises(RunDirError, match=r"settings changed .*--overwrite to delete it"):
        check(scored, "score", {"seed": 1}, resume=True)
    check(scored, "score", {"seed": 1}, resume=False, overwrite=True)
    (scored / "report.html").write_text("x")
    with owned(scored, overwrite=True):
        assert sorted(p.name for p in scored.iterdir() if not p.name.startswith(".")) == []
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with owned(foreign, overwrite=True):  # not an mm-align run: never cleared
        assert (foreign / "notes.txt").exists()
    with pytest.raises(RunDirError, match="not an mm-align run"):
        check(foreign, "score", {}, resume=False, overwrite=True)


# ---- console ---------------------------------------------------------------------------------


def test_failures_line_p_values_and_small_sample_note() -> None:
    assert failures_line(2, 4, "runs/a") == f"2 of 4 samples failed, see {Path('runs/a') / 'errors.jsonl'}"
    assert failures_line(0, 4, "runs/a") == ""
    assert (format_p(0.0004), format_p(0.0421), format_p(1.0)) == ("p < 0.001", "p = 0.042", "p = 1.000")
    assert "n = 4 < 30" in small_sample_note(4) and small_sample_note(30) == ""
    from mm_align.report.fmt import p_value

    assert p_value is format_p  # one formatter for console and pages


def test_warnings_print_as_one_line(capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        one_line_warnings()
        warnings.warn("first part\n  second part", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "mm-align: warning: first part second part\n"


def test_families_fit_100_columns(capsys) -> None:
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    assert "llava" in out and max(len(line) for line in out.splitlines()) <= 100


# ---- sweep steps -----------------------------------------------------------------------------


def test_sweep_step_rule(tmp_path) -> None:
    from mm_align.pipeline.sweep import members_of, step_of

    assert [step_of(n, DEFAULT_STEP_FROM) for n in
            ("checkpoint-1200", "global_step300", "ckpt_7", "tiny-llava-s1", "run-3-step-40")] == \
        [1200, 300, 7, None, 40]
    assert step_of("tiny-llava-s1", r"s(\d+)") == 1
    for name in ("seed-s1", "seed-s2"):
        (tmp_path / name).mkdir()
    base = {"models": [str(tmp_path / "seed-*")], "data": "d", "out": str(tmp_path / "o")}
    assert [m.step for m in members_of(SweepConfig(**base))] == [None, None]
    assert [m.step for m in members_of(SweepConfig(**base, step_from=r"s(\d+)$"))] == [1, 2]
    assert [m.step for m in members_of(SweepConfig(**base, steps="100,50"))] == [100, 50]
    with pytest.raises(ValueError, match="gives 1 steps for 2 members"):
        members_of(SweepConfig(**base, steps="100"))
    with pytest.raises(ValueError, match="not a regular expression"):
        SweepConfig(**base, step_from="(")


# ---- whole runs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_config_replay_failures_and_reuse(tmp_path, tiny_checkpoints, capsys) -> None:
    """A quiet run with a bad sample: nothing but the failures line, exit 3 with
    --fail-on-errors; its config.json replayed into a new folder gives the same numbers; a
    run that failed before scoring leaves a folder the next run takes."""
    images = sorted(SAMPLE.glob("*.jpg"))[:3]
    rows = [{"image": str(p), "text": f"a photo of {p.stem}"} for p in images]
    rows.insert(1, {"image": str(tmp_path / "missing.jpg"), "text": "gone"})
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = tmp_path / "first"
    model = str(tiny_checkpoints["qwen2_5_vl"])  # built first: its banner is not the run's output
    capsys.readouterr()
    common = ["--data", str(tmp_path / "data.jsonl"), "--n-boot", "20", "--batch-size", "2"]
    rc = main(["-q", "score", "--model", model, *common, "--out", str(first),
               "--fail-on-errors"])
    printed = capsys.readouterr()
    assert rc == EXIT_SAMPLES_FAILED and printed.out == ""
    assert printed.err.strip().splitlines()[-1] == \
        f"mm-align: 1 of 4 samples failed, see {first / 'errors.jsonl'}"
    again = tmp_path / "again"
    assert main(["score", "--config", str(first / "config.json"), "--out", str(again)]) == 0
    out = capsys.readouterr().out
    assert out.count("95% CI") == 1 and "n = 3 < 30" in out
    assert_same_run(first, again, FLOAT64)
    # a run that fails before scoring, then another run with other settings in its folder
    broken = tmp_path / "broken"
    assert main(["score", "--model", model, *common, "--out", str(broken),
                 "--layers", "99"]) == 1
    assert (broken / "config.json").exists()
    capsys.readouterr()
    assert main(["score", "--model", model, *common, "--out", str(broken),
                 "--limit", "2"]) == 0
    assert json.loads((broken / "config.json").read_text())["config"]["limit"] == 2
    shutil.rmtree(again)


@pytest.mark.slow
def test_tiny_text_models(tmp_path, capsys) -> None:
    from transformers import AutoConfig

    for family in ("opt", "llama"):
        assert main(["tiny", family, str(tmp_path / family)]) == 0
        assert AutoConfig.from_pretrained(tmp_path / family).model_type == family
    assert "seed 1234" in capsys.readouterr().out
