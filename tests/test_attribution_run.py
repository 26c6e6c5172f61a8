"""``mm-align attribution``: hooks against transformers' own outputs, interventions against
independent forward passes and an independent KL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mm_align.api import attribution
from mm_align.cli import main
from mm_align.metrics.attribution import lasso_token_weights
from tests.geometry_models import TEXTS, build_families, write_texts
from tests.helpers import read_summary

KS = (1, 2, 4, 64)  # 64: more than any text's candidates, so absent from the records


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_families(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_texts(tmp_path_factory.mktemp("texts") / "texts.txt", TEXTS[:3])


def _reference(model_dir: Path, text: str):
    tok = AutoTokenizer.from_pretrained(model_dir)
    lm = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = lm(input_ids=ids, output_hidden_states=True, output_attentions=True)
    return lm, ids, out


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """KL(p || q) in float64, written out (not the package's kl_divergence)."""
    p = torch.softmax(p_logits.double(), -1)
    return float((p * (p.log() - torch.log_softmax(q_logits.double(), -1))).sum())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "opt"])
def test_hooks_lasso_and_removal_equal_independent_computations(
    models: dict[str, Path], data: Path, family: str
) -> None:
    result = attribution(models[family], data, layer=-1, k=KS, alpha_ratio=0.1,
                         random_draws=2, progress=False, batch_size=4)
    for r in result.results:
        lm, ids, out = _reference(models[family], TEXTS[r["index"]])
        T = ids.shape[1]
        assert r["candidates"] == list(range(1, T - 1))  # BOS is no candidate by default
        attention = out.attentions[-1][0, :, -1, 1 : T - 1].mean(0)
        assert r["attention"] == pytest.approx(attention.tolist(), abs=1e-6)
        states = out.hidden_states[-1][0, 1:]
        weights = lasso_token_weights(states, alpha=r["alpha"])
        assert r["lasso_weights"] == pytest.approx(weights.tolist(), abs=1e-6)
        assert set(r["kl"]["delete"]["lasso"]) == {str(k) for k in KS if k <= T - 2}
        for selector in ("lasso", "attention"):
            chosen = r["selected"][selector]["2"]
            kept = [0] + sorted(chosen) + [T - 1]
            with torch.no_grad():
                q = lm(input_ids=ids[:, kept]).logits[0, -1]
            assert r["kl"]["keep_only"][selector]["2"] == pytest.approx(
                _kl(out.logits[0, -1], q), rel=1e-4, abs=1e-7)
            deleted = [i for i in range(T) if i not in chosen]
            with torch.no_grad():
                q = lm(input_ids=ids[:, deleted]).logits[0, -1]
            assert r["kl"]["delete"][selector]["2"] == pytest.approx(
                _kl(out.logits[0, -1], q), rel=1e-4, abs=1e-7)


@pytest.mark.slow
def test_mask_intervention_equals_an_independent_masked_pass(models: dict[str, Path], data: Path) -> None:
    result = attribution(models["llama"], data, layer=1, k=(3,), alpha_ratio=0.1,
                         random_draws=1, intervention="mask", progress=False)
    r = result.results[0]
    lm, ids, out = _reference(models["llama"], TEXTS[r["index"]])
    T, chosen = ids.shape[1], r["selected"]["attention"]["3"]
    mask = torch.ones(1, T, dtype=torch.long)
    mask[0, chosen] = 0
    with torch.no_grad():
        q = lm(input_ids=ids, attention_mask=mask, position_ids=torch.arange(T)[None]).logits[0, -1]
    assert r["kl"]["delete"]["attention"]["3"] == pytest.approx(_kl(out.logits[0, -1], q), rel=1e-4)
    # layer 1: the attention of block 0
    attention = out.attentions[0][0, :, -1, 1 : T - 1].mean(0)
    assert r["attention"] == pytest.approx(attention.tolist(), abs=1e-6)


@pytest.mark.slow
def test_keeping_every_candidate_changes_nothing(models: dict[str, Path], data: Path) -> None:
    T = [len(AutoTokenizer.from_pretrained(models["llama"])(t)["input_ids"]) for t in TEXTS[:3]]
    result = attribution(models["llama"], data, k=(min(T) - 2,), alpha_ratio=0.1,
                         random_draws=1, progress=False, limit=1)
    r = result.results[0]
    for selector in ("lasso", "attention", "random"):
        assert r["kl"]["keep_only"][selector][str(min(T) - 2)] == pytest.approx(0.0, abs=1e-6)
        assert r["top1"]["keep_only"][selector][str(min(T) - 2)] == 1.0


@pytest.mark.slow
def test_run_directory_seeds_summary_and_report(
    models: dict[str, Path], data: Path, tmp_path: Path
) -> None:
    base = ["attribution", "--model", str(models["llama"]), "--data", str(data), "--k", "1,2",
            "--alpha-ratio", "0.1", "--random-draws", "2", "--no-progress"]
    for name, seed in (("a", "0"), ("b", "0"), ("c", "5")):
        assert main(base + ["--out", str(tmp_path / name), "--seed", seed]) == 0
    runs = {n: [json.loads(x) for x in (tmp_path / n / "results.jsonl").read_text().splitlines()]
            for n in "abc"}
    assert runs["a"] == runs["b"]
    assert any(a["kl"]["delete"]["random"] != c["kl"]["delete"]["random"]
               for a, c in zip(runs["a"], runs["c"]))
    summary = read_summary(tmp_path / "a")
    for mode in ("keep_only", "delete"):
        for selector in ("lasso", "attention", "random"):
            values = [r["kl"][mode][selector]["2"] for r in runs["a"]]
            assert summary["curves"]["kl"][mode][selector]["2"] == pytest.approx(np.mean(values))
        lasso = np.array([r["kl"][mode]["lasso"]["1"] for r in runs["a"]])
        attention = np.array([r["kl"][mode]["attention"]["1"] for r in runs["a"]])
        wins = (lasso < attention) if mode == "keep_only" else (lasso > attention)
        wins = wins + 0.5 * (lasso == attention)
        assert summary["lasso_win_rate"][mode]["1"] == pytest.approx(wins.mean())
    assert summary["provenance"]["k"] == [1, 2] and summary["provenance"]["intervention"] == "remove"
    assert "<svg" in (tmp_path / "a" / "report.html").read_text()


def test_layer_zero_has_no_attention_block(models: dict[str, Path], data: Path) -> None:
    with pytest.raises(ValueError, match="no attention block"):
        attribution(models["llama"], data, layer=0, progress=False)
