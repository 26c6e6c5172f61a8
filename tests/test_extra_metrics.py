"""``score --metrics``: RankMe, linear CKA, mutual k-NN, CKNNA and MIR computed by a run.

The run's numbers are checked against states gathered here from the adapter (the same
batches of 2 as the run, so the model's float32 round-off is the same) and reduced with
plain float64 code: written in this file (RankMe, CKA, mutual k-NN) or the NumPy
re-derivations of the reference repositories in tests/test_metrics_platonic.py (platonic-rep's
feature preparation, CKNNA) and tests/test_metrics_mir.py (MIR). MIR's rows are also taken
from transformers' own ``output_hidden_states``, sliced as MIR's ``mir.py`` slices them. Also:
a resumed run equals an uninterrupted one, a default run keeps no states, a wrong name is
refused, the CLI flags parse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mm_align import score
from mm_align.cli import build_parser, main
from mm_align.config import ScoreConfig
from mm_align.data import open_dataset
from mm_align.metrics.mir import mir, mir_per_layer
from mm_align.pipeline.extra_metrics import extra_summary
from mm_align.rundir import MemoryRun, RunDirError, RunFiles, load_run
from tests.helpers import SAMPLE, read_summary
from tests.test_metrics_mir import _ref_mir
from tests.test_metrics_platonic import _ref_cknna, _ref_prepare

STAGES = ("vision", "projector", "image", "text", "joint")
ALL = "cka,cknna,knn,mir,rankme"
# The run: 6 samples in batches of 2, every layer swept, MIR over the first 4 samples.
RUN = {"limit": 6, "batch_size": 2, "n_boot": 50, "layers": "all", "knn_k": 2, "mir_samples": 4,
       "progress": False}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, load_tiny) -> Path:
    out = tmp_path_factory.mktemp("extra") / "fresh"
    score(load_tiny("llava"), SAMPLE, out, metrics=ALL, **RUN)
    return out


@pytest.fixture(scope="module")
def reps(load_tiny) -> list:
    """The adapter's representations of the run's 6 samples, in the run's batches of 2."""
    adapter = load_tiny("llava")
    pairs = [s.load() for s in list(open_dataset(SAMPLE))[:6]]
    every = list(range(adapter.num_hidden_states))
    out = []
    for start in range(0, 6, 2):
        images, texts = zip(*pairs[start : start + 2])
        out += adapter.represent_batch(list(images), list(texts), layers=every)
    return out


def _rankme(z: torch.Tensor) -> float:
    """RankMe as the paper writes it: singular values of Z, p = s / sum s + 1e-7."""
    s = np.linalg.svd(z.double().cpu().numpy(), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def _cka(x: np.ndarray, y: np.ndarray, eps: float = 0.0) -> float:
    """Linear CKA with the biased HSIC: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F + eps)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y) + eps))


def _knn(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean overlap / k of each row's k most cosine-similar other rows in a and in b."""
    def neighbours(x: np.ndarray) -> list[set[int]]:
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = u @ u.T
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:k].tolist()) for row in sim]
    return float(np.mean([len(p & q) / k for p, q in zip(neighbours(a), neighbours(b))]))


@pytest.mark.slow
def test_rankme_per_sample_and_summary_match_a_plain_reference(fresh, reps) -> None:
    results = load_run(fresh).results
    for record, rep in zip(results, reps, strict=True):
        for stage in STAGES:
            assert record["rankme"][stage] == pytest.approx(_rankme(rep[stage]), rel=1e-9, abs=1e-9)
    entry = read_summary(fresh)["metrics"]["rankme"]
    assert entry["n_samples"] == 6
    for stage in STAGES:
        values = [_rankme(rep[stage]) for rep in reps]
        assert entry["mean"][stage] == pytest.approx(sum(values) / 6, rel=1e-9, abs=1e-9)
        lo, hi = entry["ci95"][stage]
        assert min(values) <= lo <= hi <= max(values)


def _pooled(reps: list, stage: str) -> np.ndarray:
    return np.stack([rep[stage].double().mean(0).numpy() for rep in reps])


@pytest.mark.slow
def test_cka_knn_cknna_follow_platonic_reps_pipeline(fresh, reps) -> None:
    # measure_alignment.py: each model's features clamped and row-normalised, then the metric
    # (CKA and CKNNA with their + 1e-6).
    image, text = _ref_prepare(_pooled(reps, "image")), _ref_prepare(_pooled(reps, "text"))
    metrics = read_summary(fresh)["metrics"]
    assert metrics["cka"] == {"value": pytest.approx(_cka(image, text, 1e-6), rel=1e-9, abs=1e-9),
                              "n_samples": 6, "features": "platonic"}
    assert metrics["knn"] == {"value": pytest.approx(_knn(image, text, 2), abs=1e-9), "n_samples": 6, "k": 2,
                              "features": "platonic", "chance": pytest.approx(2 / 5)}
    assert metrics["cknna"] == {"value": pytest.approx(_ref_cknna(image, text, 2), rel=1e-9, abs=1e-9),
                                "n_samples": 6, "k": 2, "features": "platonic"}


@pytest.mark.slow
def test_raw_pooled_features_are_compared_as_they_are(reps, load_tiny) -> None:
    got = score(load_tiny("llava"), SAMPLE, None, metrics="cka,knn,cknna", pooled_features="raw",
                **{**RUN, "layers": None}).summary["metrics"]
    image, text = _pooled(reps, "image"), _pooled(reps, "text")
    assert got["cka"]["value"] == pytest.approx(_cka(image, text), rel=1e-9, abs=1e-9)
    assert got["knn"]["value"] == pytest.approx(_knn(image, text, 2), abs=1e-9)
    assert got["cknna"]["value"] == pytest.approx(_ref_cknna(image, text, 2, eps=0.0), rel=1e-9, abs=1e-9)
    assert {entry["features"] for entry in got.values()} == {"raw"}


@pytest.mark.slow
def test_mir_over_the_first_samples_at_the_swept_layers(fresh, reps, load_tiny) -> None:
    n_hidden = load_tiny("llava").num_hidden_states
    layers = range(1, n_hidden)  # every layer swept; MIR skips the embedding output

    def split(rep, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        is_image = rep.masks["image"][rep.masks["joint"]]
        joint = rep.layer("joint", layer)
        return joint[is_image], joint[~is_image]

    image = [torch.cat([split(rep, layer)[0] for rep in reps[:4]]) for layer in layers]
    text = [torch.cat([split(rep, layer)[1] for rep in reps[:4]]) for layer in layers]
    entry = read_summary(fresh)["metrics"]["mir"]
    # LLaVA's plain prompt has nothing but the text after the image: both text rules agree.
    assert entry["n_samples"] == 4 and entry["text_rows"] == "after-image"
    assert entry["value"] == pytest.approx(mir(image, text), rel=1e-9, abs=1e-9)
    assert list(entry["layers"]) == [str(layer) for layer in layers]
    assert list(entry["layers"].values()) == pytest.approx(mir_per_layer(image, text), rel=1e-9, abs=1e-9)
    # Only the first mir_samples samples keep MIR's token states; every one keeps the pooled.
    run = load_run(fresh)
    assert run.extra_metrics()["mir"]["value"] == entry["value"]
    files = RunFiles(fresh)
    assert sorted(p.name for p in (fresh / "states").iterdir()) == [f"{i:08d}.safetensors" for i in range(6)]
    for i in range(6):
        has_mir = {f"mir.{m}.{layer}" for m in ("image", "text") for layer in layers} <= set(files.state_keys(i))
        assert has_mir == (i < 4) and {"pooled.image", "pooled.text"} <= set(files.state_keys(i))


def _mir_rows_from_transformers(adapter, rep, text_rows: str) -> tuple[list, list]:
    """Per layer 1..L, MIR's image and text rows of one sample from ``output_hidden_states``:
    as mir.py, the image tokens from the first one on and, for ``after-image``, every
    position after them; ``content`` keeps the text's own tokens (the representation's masks)."""
    ids = rep.inputs["joint"]["input_ids"][0]
    is_image = ids == adapter.model.config.image_token_id
    start, n_image = int(torch.nonzero(is_image)[0]), int(is_image.sum())
    with torch.inference_mode():
        hidden = adapter.model(**rep.inputs["joint"], output_hidden_states=True).hidden_states
    content = rep.masks["joint"] & ~rep.masks["image"]
    images = [h[0, start : start + n_image].double().numpy() for h in hidden[1:]]
    if text_rows == "after-image":
        return images, [h[0, start + n_image :].double().numpy() for h in hidden[1:]]
    return images, [h[0][content].double().numpy() for h in hidden[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("text_rows", ["after-image", "content"])
def test_mir_text_rows_follow_mirs_script_on_qwen(text_rows, load_tiny) -> None:
    # Qwen's plain prompt puts <|vision_end|> after the image tokens: MIR's script takes it
    # as a text row, the content rule does not.
    adapter = load_tiny("qwen2_5_vl")
    got = score(adapter, SAMPLE, None, metrics="mir", mir_text=text_rows, limit=3, batch_size=1,
                layers="all", mir_samples=3, n_boot=10, progress=False).summary["metrics"]["mir"]
    per_sample = [_mir_rows_from_transformers(adapter, adapter.represent(*s.load()), text_rows)
                  for s in list(open_dataset(SAMPLE))[:3]]
    n_layers = adapter.num_hidden_states - 1
    images = [np.concatenate([sample[0][layer] for sample in per_sample]) for layer in range(n_layers)]
    texts = [np.concatenate([sample[1][layer] for sample in per_sample]) for layer in range(n_layers)]
    assert got["text_rows"] == text_rows and len(got["layers"]) == n_layers
    assert got["value"] == pytest.approx(_ref_mir(images, texts), rel=1e-6)
    rep = adapter.represent(*next(iter(open_dataset(SAMPLE))).load())
    after, content = (_mir_rows_from_transformers(adapter, rep, rule)[1][0] for rule in ("after-image", "content"))
    assert len(after) == len(content) + 1


def test_pooled_states_that_cannot_be_prepared_leave_a_reason() -> None:
    store = MemoryRun()
    store.open({"identity": {}})
    results = [{"id": str(i), "index": i} for i in range(5)]
    bad = {"pooled.image": torch.full((3,), math.nan, dtype=torch.float64), "pooled.text": torch.ones(3, dtype=torch.float64)}
    store.append(results, [], {r["index"]: bad for r in results})
    got = extra_summary(("cka", "cknna"), results, store)
    assert got == {m: {"skipped": "x: holds NaN or Inf values", "n_samples": 5, "features": "platonic"}
                   for m in ("cka", "cknna")}


@pytest.mark.parametrize("kind", ["files", "memory"])
def test_states_round_trip_in_their_dtype(tmp_path, kind) -> None:
    store = RunFiles(tmp_path / "run") if kind == "files" else MemoryRun()
    store.open({"identity": {}})
    kept = {"a": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3), "b": torch.ones(4, dtype=torch.float64)}
    store.append([{"id": "x", "index": 7}], [], {7: kept})
    assert store.state_keys(7) == ["a", "b"] and store.state_keys(8) == []
    got = store.read_states(7, ["a"])
    assert list(got) == ["a"] and got["a"].dtype == torch.bfloat16 and torch.equal(got["a"], kept["a"])
    with pytest.raises(RunDirError):
        store.read_states(8)
    with pytest.raises(RunDirError):
        store.read_states(7, ["c"])


@pytest.mark.slow
def test_resume_gives_the_metrics_of_an_uninterrupted_run(fresh, tmp_path, load_tiny) -> None:
    adapter, out = load_tiny("llava"), tmp_path / "resumed"
    score(adapter, SAMPLE, out, metrics=ALL, **{**RUN, "limit": 4})
    with pytest.raises(RunDirError, match="metrics"):
        score(adapter, SAMPLE, out, metrics="cka", resume=True, **RUN)
    score(adapter, SAMPLE, out, metrics="erank," + ALL, resume=True, **RUN)  # erank: same run
    assert read_summary(out)["metrics"] == read_summary(fresh)["metrics"]
    assert (out / "results.jsonl").read_bytes() == (fresh / "results.jsonl").read_bytes()


@pytest.mark.slow
def test_default_run_keeps_no_states_and_has_no_metrics(tmp_path, load_tiny) -> None:
    out = tmp_path / "plain"
    result = score(load_tiny("llava"), SAMPLE, out, limit=2, n_boot=10, progress=False)
    assert "metrics" not in result.summary and not (out / "states").exists()
    assert "rankme" not in result.results[0]
    assert "Neighbouring alignment metrics" not in (out / "report.html").read_text()


@pytest.mark.slow
def test_memory_run_equals_the_run_directory_and_too_few_samples_is_a_reason(fresh, load_tiny) -> None:
    kept = score(load_tiny("llava"), SAMPLE, None, metrics=ALL, **RUN)
    assert kept.summary["metrics"] == read_summary(fresh)["metrics"]
    few = score(load_tiny("llava"), SAMPLE, None, metrics="knn,cka", limit=3, n_boot=10, progress=False)
    assert "needs at least k + 1 = 11 samples" in few.summary["metrics"]["knn"]["skipped"]
    assert math.isfinite(few.summary["metrics"]["cka"]["value"])


@pytest.mark.slow
def test_report_shows_the_metrics(fresh) -> None:
    page = (fresh / "report.html").read_text()
    assert "Neighbouring alignment metrics" in page and "Mutual k-NN (k = 2)" in page
    assert "CKNNA (k = 2)" in page and "text rows: after-image" in page and "pooled features: platonic" in page


def test_unknown_metric_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown metric\(s\) foo; valid: erank, cka, cknna, knn, mir, rankme"):
        ScoreConfig(model="m", data="d", metrics="rankme,foo")
    with pytest.raises(ValueError, match="knn_k must be >= 1"):
        ScoreConfig(model="m", data="d", knn_k=0)
    with pytest.raises(ValueError, match="unknown pooled_features 'cls'; choose from platonic, raw"):
        ScoreConfig(model="m", data="d", pooled_features="cls")
    with pytest.raises(ValueError, match="unknown mir_text 'all'; choose from after-image, content"):
        ScoreConfig(model="m", data="d", mir_text="all")
    assert ScoreConfig(model="m", data="d", metrics=["mir", "erank", "cka"]).metrics == ("cka", "mir")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:RANDOM WEIGHTS")
def test_cli_flag_parses_and_is_in_the_identity(tmp_path, tiny_checkpoints) -> None:
    argv = ["score", "--model", "m", "--data", "d", "--out", "o", "--metrics", "rankme, erank,knn",
            "--knn-k", "3", "--mir-samples", "7", "--pooled-features", "raw", "--mir-text", "content"]
    config = ScoreConfig.from_args(build_parser().parse_args(argv))
    assert (config.metrics, config.knn_k, config.mir_samples) == (("knn", "rankme"), 3, 7)
    assert (config.pooled_features, config.mir_text) == ("raw", "content")
    assert {"metrics", "knn_k", "mir_samples", "pooled_features", "mir_text"} <= set(config.identity())
    default = ScoreConfig.from_args(build_parser().parse_args(argv[:7]))
    assert (default.pooled_features, default.mir_text) == ("platonic", "after-image")
    out = tmp_path / "cli"
    assert main(["score", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--out",
                 str(out), "--limit", "4", "--n-boot", "10", "--no-progress", "--metrics", "cka,knn",
                 "--knn-k", "2"]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["metrics"] == ["cka", "knn"]
    assert set(read_summary(out)["metrics"]) == {"cka", "knn"}


@pytest.mark.slow
def test_controls_get_the_metrics_too(tmp_path, load_tiny) -> None:
    result = score(load_tiny("llava"), SAMPLE, tmp_path / "c", limit=4, n_boot=10, progress=False,
                   controls=["shuffled"], metrics="cka,rankme")
    shuffled = result.controls["shuffled"].summary
    assert set(shuffled["metrics"]) == set(result.summary["metrics"]) == {"cka", "rankme"}
    assert (tmp_path / "c" / "controls" / "shuffled" / "states").is_dir()
    assert "controls" in result.summary and "erank_text" in result.summary["controls"]["shuffled"]
