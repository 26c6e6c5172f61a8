"""``diff_erank`` (the paper's single-modal Diff-eRank) on tiny OPT and Llama checkpoints,
against an independent float64 implementation of the official procedure."""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mm_align import diff_erank
from mm_align.adapters.tiny.text import build_tiny_text_model
from mm_align.cli import main
from mm_align.data import ManifestError
from mm_align.pipeline.scorer import ScoreError
from mm_align.pipeline.texts import open_texts
from mm_align.rundir import RunDirError
from tests.helpers import read_jsonl, read_summary
from tests.reference import official_entropy

MAX_LENGTH = 24
LONG = " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 4)
TEXTS = [
    "A cat sits on a wooden floor and looks at the camera.",
    "",  # empty: an error at load
    "There are two people walking along a street with tall buildings and cars.",
    "The",  # one token (plus BOS): an error at metric
    LONG,  # longer than MAX_LENGTH: truncated
    "A red bus is parked next to a green tree in the city centre.",
    "Describe the image in detail. What is in this picture?",
    "A cup of coffee with latte art on a saucer, seen from above.",
]
SCORED = [i for i, t in enumerate(TEXTS) if i not in (1, 3)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_text")
    return {family: build_tiny_text_model(root / family, family) for family in ("opt", "llama")}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS))
    )
    return path


def _run(model: Path, data: Path, out: Path, **options: object) -> dict:
    options = {
        "max_length": MAX_LENGTH,
        "batch_size": 4,
        "progress": False,
        "n_boot": 200,
        **options,
    }
    return diff_erank(model, data, out, **options).summary


def _results(out: Path) -> list[dict]:
    return read_jsonl(out / "results.jsonl")


@pytest.fixture(scope="module")
def full_run(models: dict[str, Path], data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    _run(models["opt"], data, out)
    return out


def _untrained(model_dir: Path, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AutoModel.from_config(AutoConfig.from_pretrained(model_dir)).eval()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["opt", "llama"])
def test_entropies_equal_official_procedure_on_last_hidden_state(
    family: str, models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    model_dir = models[family]
    out = tmp_path / family
    _run(model_dir, data, out, batch_size=3)
    tok = AutoTokenizer.from_pretrained(model_dir)
    nets = {
        "trained": AutoModel.from_pretrained(model_dir).eval(),
        "untrained": _untrained(model_dir, 0),
    }
    results = _results(out)
    assert [r["index"] for r in results] == SCORED
    for r in results:
        enc = tok(TEXTS[r["index"]], truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        assert r["tokens"] == enc["input_ids"].shape[1]
        for name, net in nets.items():
            with torch.no_grad():
                o = net(**enc, output_hidden_states=True)
            torch.testing.assert_close(o.hidden_states[-1], o.last_hidden_state, rtol=0, atol=0)
            h = official_entropy(o.hidden_states[-1][0].numpy())
            assert r[f"entropy_{name}"] == pytest.approx(h, rel=1e-5)
            assert r[f"erank_{name}"] == pytest.approx(math.exp(h), rel=1e-5)
            assert r[f"matrix_entropy_{name}"] == pytest.approx(h / math.log(64), rel=1e-5)
        assert r["diff_erank"] == pytest.approx(
            r["erank_untrained"] - r["erank_trained"], abs=1e-12
        )


@pytest.mark.slow
def test_summary_is_algorithms_a_and_b_of_the_results(full_run: Path) -> None:
    results = _results(full_run)
    summary = read_summary(full_run)
    h0 = np.array([r["entropy_untrained"] for r in results])
    h1 = np.array([r["entropy_trained"] for r in results])
    assert summary["n_samples"] == len(SCORED) and summary["n_errors"] == 2
    assert summary["diff_erank"]["paper"] == pytest.approx(
        np.exp(h0.mean()) - np.exp(h1.mean()), rel=1e-12
    )
    assert summary["diff_erank"]["mean"] == pytest.approx(
        np.mean(np.exp(h0) - np.exp(h1)), rel=1e-12
    )
    assert summary["erank"] == pytest.approx(
        {"untrained": np.exp(h0.mean()), "trained": np.exp(h1.mean())}
    )
    assert summary["matrix_entropy"] == pytest.approx(
        {"untrained": h0.mean() / math.log(64), "trained": h1.mean() / math.log(64)}
    )
    for key, value in (("diff_erank", "paper"), ("diff_erank_mean", "mean")):
        lo, hi = summary["ci95"][key]
        assert lo <= summary["diff_erank"][value] <= hi
    # The tiny "trained" checkpoint has low-rank embeddings: less rank than its random init.
    assert summary["diff_erank"]["paper"] > 0
    prov = summary["provenance"]
    assert prov["seed"] == 0 and prov["max_length"] == MAX_LENGTH and prov["data"]["fingerprint"]
    assert "RANDOM WEIGHTS" in prov["model"]["note"]


@pytest.mark.slow
def test_batch_size_and_padding_do_not_change_results(
    full_run: Path, models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    _run(models["opt"], data, tmp_path / "b1", batch_size=1)
    for a, b in zip(_results(full_run), _results(tmp_path / "b1"), strict=True):
        assert a["id"] == b["id"] and a["tokens"] == b["tokens"]
        for key in ("entropy_trained", "entropy_untrained", "diff_erank"):
            assert a[key] == pytest.approx(b[key], abs=1e-5)


@pytest.mark.slow
def test_untrained_model_is_seeded(
    full_run: Path, models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    _run(models["opt"], data, tmp_path / "same")
    _run(models["opt"], data, tmp_path / "other", seed=7)
    full, same, other = (_results(p) for p in (full_run, tmp_path / "same", tmp_path / "other"))
    assert same == full
    assert [r["entropy_trained"] for r in other] == [r["entropy_trained"] for r in full]
    assert all(o["entropy_untrained"] != f["entropy_untrained"] for o, f in zip(other, full))


@pytest.mark.slow
def test_resume_after_partial_run_equals_full_run(
    full_run: Path, models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    _run(models["opt"], data, out, limit=3)
    assert len(_results(out)) == 2
    with pytest.raises(RunDirError, match="seed"):
        _run(models["opt"], data, out, seed=1, resume=True)
    with pytest.raises(RunDirError, match="already holds a run"):
        _run(models["opt"], data, out)
    summary = _run(models["opt"], data, out, resume=True)
    assert _results(out) == _results(full_run)
    full = read_summary(full_run)
    for key in (
        "n_samples",
        "n_errors",
        "diff_erank",
        "erank",
        "erank_mean",
        "matrix_entropy",
        "ci95",
    ):
        assert summary[key] == full[key]


@pytest.mark.slow
def test_truncation_respects_max_length(full_run: Path) -> None:
    results = {r["index"]: r for r in _results(full_run)}
    assert all(r["tokens"] <= MAX_LENGTH for r in results.values())
    assert results[4]["tokens"] == MAX_LENGTH and results[4]["truncated"]
    assert not any(r["truncated"] for i, r in results.items() if i != 4)
    assert results[4]["text"] == LONG[:200]


@pytest.mark.slow
def test_empty_and_one_token_texts_are_errors(
    full_run: Path, models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    errors = read_jsonl(full_run / "errors.jsonl")
    assert [(e["id"], e["stage"]) for e in errors] == [("t1", "load"), ("t3", "metric")]
    assert errors[0]["reason"] == "text is empty"
    assert "1 token(s) besides special tokens" in errors[1]["reason"]
    with pytest.raises(ScoreError, match=r"'t1'.*text is empty"):
        _run(models["opt"], data, tmp_path / "strict", strict=True)


def test_text_formats(tmp_path: Path) -> None:
    txt = tmp_path / "t.txt"
    txt.write_text("first text\n\nsecond text\n")
    assert [(s.id, s.index, s.text) for s in open_texts(txt)] == [
        ("1", 0, "first text"),
        ("3", 1, "second text"),
    ]

    table = tmp_path / "t.csv"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows([["instruction", "response"], ["Say hi.", "Hi!"]])
    assert [s.text for s in open_texts(table)] == ["Say hi.\nHi!"]

    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"body": "one"}\n{"body": "two"}\n')
    assert [s.text for s in open_texts(jsonl, text_column="body")] == ["one", "two"]
    with pytest.raises(ManifestError, match=r"t.jsonl:1: no 'text' column"):
        open_texts(jsonl)
    jsonl.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(ManifestError, match=r"t.jsonl:2: invalid JSON"):
        open_texts(jsonl)

    import datasets

    datasets.Dataset.from_dict({"text": ["a b", "c d"], "other": [1, 2]}).save_to_disk(
        tmp_path / "ds"
    )
    assert [(s.id, s.text) for s in open_texts(tmp_path / "ds")] == [("0", "a b"), ("1", "c d")]


@pytest.mark.slow
def test_cli_prints_table_and_reports_bad_data(
    models: dict[str, Path], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "diff-erank",
        "--model",
        str(models["opt"]),
        "--out",
        str(tmp_path / "cli"),
        "--max-length",
        str(MAX_LENGTH),
        "--no-progress",
    ]
    assert main([*args, "--data", str(data), "--limit", "3"]) == 0
    printed = capsys.readouterr().out
    assert (
        "Diff-eRank (a)" in printed and "Diff-eRank (b)" in printed and "matrix entropy" in printed
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    assert main([*args, "--data", str(bad), "--out", str(tmp_path / "cli2")]) == 1
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err


@pytest.mark.slow
def test_a_text_without_spectrum_costs_only_itself(
    models: dict[str, Path], data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not `import ... as`: the package's `diff_erank` attribute is the function.
    module = importlib.import_module("mm_align.pipeline.diff_erank")
    real = module.matrix_entropy
    bad_tokens = 14  # index 0's length: "A cat sits on ..." with BOS

    def flaky(states: torch.Tensor) -> float:
        if states.shape[0] == bad_tokens:
            raise ValueError("the representation holds NaN or Inf values")
        return real(states)

    monkeypatch.setattr(module, "matrix_entropy", flaky)
    summary = _run(models["opt"], data, tmp_path / "flaky")
    errors = [
        json.loads(line) for line in (tmp_path / "flaky" / "errors.jsonl").read_text().splitlines()
    ]
    failed = [e for e in errors if e["stage"] == "metric" and "NaN" in e["reason"]]
    assert [e["id"] for e in failed] == ["t0"] and failed[0]["reason"].startswith("trained model:")
    assert summary["n_samples"] == len(SCORED) - 1
