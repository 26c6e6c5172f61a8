"""``mm-align info-gain``: the pipeline's curves against states computed independently with
transformers' own ``output_hidden_states``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from mm_align.api import info_gain
from mm_align.cli import main
from mm_align.metrics.info_gain import gain_curve, logdet_entropy
from tests.geometry_models import TEXTS, build_families, write_texts
from tests.helpers import read_jsonl, read_summary


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_families(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_texts(tmp_path_factory.mktemp("texts") / "texts.txt")


def _hidden_states(model_dir: Path, text: str) -> tuple[torch.Tensor, ...]:
    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir)
    with torch.no_grad():
        return model.eval()(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states


@pytest.mark.slow
@pytest.mark.parametrize(("family", "layer"), [("llama", 0), ("llama", 2), ("llama", -1), ("opt", 1)])
def test_curves_equal_gain_curve_of_transformers_hidden_states(
    models: dict[str, Path], data: Path, family: str, layer: int
) -> None:
    result = info_gain(models[family], data, layer=layer, lam=0.5, progress=False, batch_size=2)
    assert [r["index"] for r in result.results] == list(range(len(TEXTS)))
    for r in result.results:
        states = _hidden_states(models[family], TEXTS[r["index"]])[layer][0]
        expected = gain_curve(states, lam=0.5)
        assert r["gain_curve"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
        # the chain rule: the gains add up to the log-det entropy of the whole text
        assert sum(r["gain_curve"]) == pytest.approx(logdet_entropy(states, lam=0.5), rel=1e-4)
        assert r["entropy"] == pytest.approx(sum(r["gain_curve"]), rel=1e-12)


@pytest.mark.slow
def test_run_directory_summary_and_report(models: dict[str, Path], data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ig"
    argv = ["info-gain", "--model", str(models["llama"]), "--data", str(data), "--out", str(out),
            "--layer", "1", "--lam", "2.0", "--form", "covariance", "--no-progress"]
    assert main(argv) == 0
    results = read_jsonl(out / "results.jsonl")
    summary = read_summary(out)
    length = max(len(r["gain_curve"]) for r in results)
    for t in (0, length - 1):
        values = [r["gain_curve"][t] for r in results if len(r["gain_curve"]) > t]
        assert summary["mean_curve"][t] == pytest.approx(np.mean(values), rel=1e-12)
        assert summary["position_counts"][t] == len(values)
    assert summary["provenance"]["lam"] == 2.0 and summary["provenance"]["form"] == "covariance"
    first = _hidden_states(models["llama"], TEXTS[0])[1][0]
    expected = gain_curve(first, lam=2.0, form="covariance")
    assert results[0]["gain_curve"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert "<svg" in (out / "report.html").read_text()
    assert main(argv + ["--resume"]) == 0  # a finished run is returned as it is


def test_layer_out_of_range_is_an_error(models: dict[str, Path], data: Path) -> None:
    with pytest.raises(ValueError, match="layer 9 is out of range for 4 hidden states"):
        info_gain(models["llama"], data, layer=9, progress=False)
