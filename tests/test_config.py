"""ScoreConfig / DiffErankConfig: one source for the CLI, the API, config.json and resume."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mm_align.cli import build_parser
from mm_align.config import (
    DEFAULT_MAX_PIXELS,
    DiffErankConfig,
    ScoreConfig,
    parse_layers,
)


def parse(argv: list[str]):
    args = build_parser().parse_args(argv)
    return ScoreConfig.from_args(args) if argv[0] == "score" else DiffErankConfig.from_args(args)


def test_default_max_pixels_is_the_data_layers() -> None:
    from mm_align.data import DEFAULT_MAX_PIXELS as data_default

    assert DEFAULT_MAX_PIXELS == data_default


@pytest.mark.parametrize(("raw", "parsed"), [
    (None, None), ("all", "all"), (" all ", "all"), ("0,8,-1", (0, 8, -1)), ("3", (3,)),
    ([1, -2], (1, -2)), ((), ()),
])
def test_parse_layers(raw, parsed) -> None:
    assert parse_layers(raw) == parsed


@pytest.mark.parametrize("raw", ["", " ", "1,,2", "a", "1.5", "all,1", [True], ["1"]])
def test_parse_layers_refuses(raw) -> None:
    with pytest.raises(ValueError, match="layers"):
        parse_layers(raw)


@pytest.mark.parametrize(("options", "message"), [
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"limit": 0}, "limit must be >= 1"),
    ({"n_boot": 0}, "n_boot must be >= 1"),
    ({"max_pixels": 0}, "max_pixels must be >= 1"),
    ({"dtype": "float8"}, "unknown dtype 'float8'; choose from auto, float32, bfloat16, float16"),
    ({"prompt": "fancy"}, "unknown prompt 'fancy'"),
    ({"controls": ["nope"]}, "unknown control 'nope'; choose from shuffled, image-only-noise, rotate90"),
    ({"baseline": "random"}, "unknown baseline 'random'; choose from untrained"),
    ({"layers": ""}, "layers takes 'all' or comma-separated integers"),
    ({"model": ""}, "model must be a non-empty path or id"),
])
def test_invalid_options_are_named(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        ScoreConfig.from_options(**{"model": "m", "data": "d", **options})


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) batchsize; valid: .*batch_size"):
        ScoreConfig.from_options(model="m", data="d", batchsize=4)


def test_cli_and_api_build_the_same_config() -> None:
    cli = parse(["score", "--model", "m", "--data", "d", "--out", "o", "--batch-size", "3",
                 "--layers", "0,-1", "--control", "shuffled", "--perturb", "rotate90",
                 "--baseline", "untrained", "--n-boot", "50", "--no-progress", "--max-pixels", "99"])
    api = ScoreConfig(model="m", data="d", out="o", batch_size=3, layers=(0, -1),
                      controls=("shuffled", "rotate90"), baseline="untrained", n_boot=50,
                      progress=False, max_pixels=99)
    assert cli == api


def test_cli_defaults_are_the_config_defaults() -> None:
    cli = parse(["score", "--model", "m", "--data", "d", "--out", "o"])
    assert cli == ScoreConfig(model="m", data="d", out="o")
    text = parse(["diff-erank", "--model", "m", "--data", "d", "--out", "o"])
    assert text == DiffErankConfig(model="m", data="d", out="o")


def test_every_field_is_on_the_cli() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["score"].format_help()
    for f in dataclasses.fields(ScoreConfig):
        flag = "--" + f.name.replace("_", "-")
        expected = {"progress": "--no-progress", "controls": "--control"}.get(f.name, flag)
        assert expected in help_text, f.name
    assert "(default: 8)" in help_text and "%%" not in help_text


def test_serialisation_round_trip_and_identity() -> None:
    config = ScoreConfig(model="m", data="d", layers="all", controls=["hflip"], seed=3)
    saved = json.loads(json.dumps(config.to_dict()))
    assert ScoreConfig(**saved) == config
    identity = config.identity()
    assert identity["seed"] == 3 and identity["layers"] == "all"
    assert "batch_size" not in identity and "resume" not in identity and "out" not in identity


def test_paths_become_strings(tmp_path) -> None:
    config = ScoreConfig(model=tmp_path, data=tmp_path / "d", projector=tmp_path / "p.bin")
    assert config.model == str(tmp_path) and config.projector == str(tmp_path / "p.bin")
    json.dumps(config.to_dict())


@pytest.mark.parametrize(("config", "name", "doc", "flag", "help_"), [
    ("InfoGainConfig", "half", "keep the 1/2 factor", "--no-half", "drop the 1/2 factor"),
    ("InfoGainConfig", "normalize_rows", "scale every token state to unit length", "--raw-states",
     "use raw token states"),
    ("AttributionConfig", "keep_first", "position 0 (BOS, an attention sink) is never selected", "--select-first",
     "let position 0 (BOS, an attention sink) be selected"),
    ("DiffErankConfig", "progress", "show progress bars", "--no-progress", "hide the progress bars"),
])
def test_a_fields_doc_describes_the_field_and_its_flags_help_the_flag(config, name, doc, flag, help_) -> None:
    import argparse

    from mm_align import config as module

    cls = getattr(module, config)
    assert module.field_doc(cls, name).startswith(doc)  # what True means
    assert module.flag_help(cls, name).startswith(help_)  # what passing the flag does
    parser = argparse.ArgumentParser()
    module.add_arguments(parser, cls)
    action = next(a for a in parser._actions if a.dest == name)
    assert action.option_strings == [flag] and action.help.startswith(help_)
    required = ["--model", "m", "--data", "d", "--out", "o"]
    assert getattr(parser.parse_args(required), name) is True
    assert getattr(parser.parse_args([*required, flag]), name) is False


def test_an_option_true_by_default_must_document_the_field() -> None:
    from mm_align.options import option

    with pytest.raises(TypeError, match="an option True by default needs doc="):
        option(True, "turn it off", "Run")
