"""``mm-align scaling`` on a series of three tiny Llama checkpoints, end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mm_align.api import scaling
from mm_align.cli import main
from mm_align.pipeline.param_count import count_parameters
from mm_align.rundir import RunDirError
from tests.geometry_models import TEXTS, build_llama, write_texts
from tests.reference import official_entropy

SIZES = {"s": (16, 1), "m": (32, 2), "l": (64, 2)}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("series")
    return {n: build_llama(root / f"llama-{n}", h, d) for n, (h, d) in SIZES.items()}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_texts(tmp_path_factory.mktemp("texts") / "texts.txt")


@pytest.fixture(scope="module")
def run(series: dict[str, Path], data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "scaling"
    argv = ["scaling", "--data", str(data), "--out", str(out), "--no-progress", "--n-boot", "200"]
    for path in series.values():
        argv += ["--model", str(path)]
    assert main(argv) == 0
    return out


def test_parameter_counts_equal_the_loaded_models(series: dict[str, Path]) -> None:
    for path in series.values():
        counted = count_parameters(path)
        # save_tiny writes the causal LM: base model plus its untied LM head
        model = AutoModel.from_pretrained(path)
        head = model.config.vocab_size * model.config.hidden_size
        assert counted == {"parameters": sum(p.numel() for p in model.parameters()) + head,
                           "source": "safetensors"}
        (path / "model.safetensors").rename(path / "hidden.bak")  # no header: meta count
        try:
            assert count_parameters(path)["parameters"] == counted["parameters"]
            assert count_parameters(path)["source"] == "meta"
        finally:
            (path / "hidden.bak").rename(path / "model.safetensors")


@pytest.mark.slow
def test_member_entropies_equal_the_official_procedure(run: Path, series: dict[str, Path]) -> None:
    for name, path in series.items():
        lines = (run / "members" / f"llama-{name}" / "results.jsonl").read_text().splitlines()
        results = [json.loads(line) for line in lines]
        assert [r["index"] for r in results] == list(range(len(TEXTS)))
        tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
        for r in results:
            with torch.no_grad():
                states = model(**tok(TEXTS[r["index"]], return_tensors="pt"))[0][0]
            assert r["entropy"] == pytest.approx(official_entropy(states.numpy()), rel=1e-5)


@pytest.mark.slow
def test_scaling_json_fits_the_members(run: Path) -> None:
    doc = json.loads((run / "scaling.json").read_text())
    assert [m["name"] for m in doc["models"]] == [f"llama-{n}" for n in SIZES]
    assert doc["n_texts"] == len(TEXTS)
    P = np.array([m["parameters"] for m in doc["models"]], dtype=float)
    H = np.array([m["entropy"] for m in doc["models"]])
    b, log_a = np.polyfit(np.log(P), np.log(H), 1)  # independent OLS in log-log space
    fit = doc["fits"]["entropy"]
    assert fit["b"] == pytest.approx(b, rel=1e-9) and fit["a"] == pytest.approx(np.exp(log_a), rel=1e-9)
    assert fit["values"] == pytest.approx(H.tolist(), rel=1e-12)
    erank = doc["fits"]["erank"]
    assert erank["values"] == pytest.approx([m["erank"] for m in doc["models"]], rel=1e-12)
    for stats in doc["fits"].values():
        lo, hi = stats["ci95"]["b"]
        assert lo <= stats["b"] <= hi
        band = stats["band"]
        assert all(lo <= hi for lo, hi in zip(band["low"], band["high"], strict=True))
    assert (run / "report.html").read_text().count("<svg") >= 1


@pytest.mark.slow
def test_resume_reuses_finished_members_and_adds_new_ones(
    series: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grow"
    first = scaling([series["s"], series["m"]], data, out, progress=False, n_boot=50)
    stamp = os.stat(out / "members" / "llama-s" / "results.jsonl").st_mtime_ns
    with pytest.raises(RunDirError, match="already holds a run"):
        scaling([series["s"], series["m"]], data, out, progress=False, n_boot=50)
    with pytest.raises(RunDirError, match="max_length"):
        scaling([series["s"], series["m"]], data, out, progress=False, resume=True, max_length=8)
    grown = scaling(list(series.values()), data, out, progress=False, n_boot=50, resume=True)
    assert os.stat(out / "members" / "llama-s" / "results.jsonl").st_mtime_ns == stamp
    assert grown["models"][:2] == first["models"] and len(grown["models"]) == 3


@pytest.mark.slow
def test_in_memory_series_writes_nothing(series: dict[str, Path], data: Path, tmp_path: Path) -> None:
    doc = scaling([series["s"], series["l"]], data, None, progress=False, n_boot=20, limit=3)
    assert doc["n_texts"] == 3 and set(doc["fits"]) == {"entropy", "normalized_entropy", "erank"}
    with pytest.raises(ValueError, match="at least 2 models"):
        scaling([series["s"]], data, None)


def test_the_series_folder_holds_its_config_members_and_document_only(run: Path) -> None:
    """The series folder is not a run of records: no empty results.jsonl / errors.jsonl;
    its kind is its config.json's command, and each member is a ``scaling-member`` run."""
    from mm_align.rundir import load_run, run_kind, series_kind

    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "config.json", "members", "report.html", "scaling.json"]
    assert run_kind(run) == series_kind(run) == "scaling"
    member = load_run(run / "members" / f"llama-{next(iter(SIZES))}")
    assert member.command == "scaling-member" and member.summary["schema"] == 1
