"""End-to-end scoring on tiny checkpoints of both families and the bundled real photos.

Every number is checked against something computed independently: the summary against
results.jsonl with plain Python, per-sample eRanks against the float64 reference of the
official procedure applied to the adapter's states, batch size against batch size, a
resumed run against an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mm_align import score
from mm_align.cli import main
from mm_align.data import open_dataset
from mm_align.pipeline.scorer import ScoreError
from mm_align.rundir import RunDirError
from tests.helpers import SAMPLE, read_jsonl, read_summary
from tests.reference import official_erank

STAGES = ("vision", "projector", "image", "text", "joint")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoints) -> dict[str, Path]:
    """family -> a run over the first 6 bundled samples through the real CLI (batch 4), for the
    two families these pipeline tests use (every family's states are proven in the adapter
    tests)."""
    out = {}
    for family in ("llava", "qwen2_5_vl"):
        ckpt = tiny_checkpoints[family]
        run = tmp_path_factory.mktemp("runs") / family
        argv = ["score", "--model", str(ckpt), "--data", str(SAMPLE), "--out", str(run),
                "--limit", "6", "--batch-size", "4", "--no-progress"]
        assert main(argv) == 0
        out[family] = run
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_summary_recomputed_from_results(runs, family) -> None:
    results = read_jsonl(runs[family] / "results.jsonl")
    summary = read_summary(runs[family])
    assert [r["index"] for r in results] == list(range(6))
    assert summary["n_samples"] == 6 and summary["n_errors"] == 0
    for stage in STAGES:
        hs = [r[f"entropy_{stage}"] for r in results]
        assert summary["erank"][stage] == pytest.approx(math.exp(sum(hs) / len(hs)), rel=1e-12)
        assert summary["erank_mean"][stage] == pytest.approx(
            sum(math.exp(h) for h in hs) / len(hs), rel=1e-12
        )
        lo, hi = summary["ci95"][f"erank_{stage}"]
        assert lo <= summary["erank"][stage] <= hi
        for r in results:
            assert r[f"erank_{stage}"] == pytest.approx(math.exp(r[f"entropy_{stage}"]), rel=1e-12)
    e = summary["erank"]
    assert summary["image_reduction_ratio"] == pytest.approx(
        (e["vision"] - e["projector"]) / e["vision"], rel=1e-12
    )
    three = (e["image"], e["text"], e["joint"])
    assert summary["image_text_alignment"] == pytest.approx(sum(three) / 3 / max(three), rel=1e-12)
    prov = summary["provenance"]
    assert prov["model"]["model_type"] == family and "RANDOM" in prov["model"]["note"]
    assert prov["data"]["fingerprint"] == open_dataset(SAMPLE).fingerprint()
    assert prov["versions"]["torch"] and prov["dtype"] == "float32"
    assert (runs[family] / "report.html").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_per_sample_eranks_match_reference_on_adapter_states(runs, load_tiny, family) -> None:
    adapter = load_tiny(family)
    sample = next(iter(open_dataset(SAMPLE)))
    image, text = sample.load()
    rep = adapter.represent(image, text)
    record = read_jsonl(runs[family] / "results.jsonl")[0]
    assert record["id"] == sample.id and record["text"] == text
    for stage in STAGES:
        states = rep[stage].double().cpu().numpy()
        assert record["tokens"][stage] == states.shape[0]
        assert record[f"erank_{stage}"] == pytest.approx(official_erank(states), rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_batch_size_does_not_change_results(tmp_path, load_tiny, runs, family) -> None:
    score(load_tiny(family), SAMPLE, tmp_path / "b1", limit=6, batch_size=1, progress=False)
    one = read_jsonl(tmp_path / "b1" / "results.jsonl")
    four = read_jsonl(runs[family] / "results.jsonl")
    for a, b in zip(one, four, strict=True):
        for stage in STAGES:
            assert a[f"erank_{stage}"] == pytest.approx(b[f"erank_{stage}"], rel=1e-5)


@pytest.mark.slow
def test_same_inputs_and_seed_give_identical_results(tmp_path, load_tiny, runs) -> None:
    score(load_tiny("qwen2_5_vl"), SAMPLE, tmp_path / "again", limit=6, batch_size=4,
          progress=False)
    assert (tmp_path / "again" / "results.jsonl").read_bytes() == (
        runs["qwen2_5_vl"] / "results.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_resume_after_a_torn_write_equals_an_uninterrupted_run(tmp_path, load_tiny, runs) -> None:
    adapter = load_tiny("qwen2_5_vl")
    full = runs["qwen2_5_vl"]
    run = tmp_path / "torn"
    run.mkdir()
    (run / "config.json").write_bytes((full / "config.json").read_bytes())
    lines = (full / "results.jsonl").read_text().splitlines(keepends=True)
    # Two complete lines and half of a third: what a kill -9 in mid-write leaves.
    (run / "results.jsonl").write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    with pytest.raises(RunDirError, match="--resume"):
        score(adapter, SAMPLE, run, limit=6, batch_size=4, progress=False)
    score(adapter, SAMPLE, run, limit=6, batch_size=4, progress=False, resume=True)
    assert [r["id"] for r in read_jsonl(run / "results.jsonl")] == [r["id"] for r in read_jsonl(full / "results.jsonl")]
    assert read_summary(run) == read_summary(full)


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing_and_scores_nothing_twice(tmp_path, tiny_checkpoints) -> None:
    run = tmp_path / "killed"
    argv = [sys.executable, "-m", "mm_align", "score", "--model", str(tiny_checkpoints["llava"]),
            "--data", str(SAMPLE), "--out", str(run), "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            path = run / "results.jsonl"
            if path.exists() and path.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    scored_before = len(read_jsonl(run / "results.jsonl"))
    assert 3 <= scored_before < 15
    assert main(argv[3:] + ["--resume"]) == 0
    ids = [r["id"] for r in read_jsonl(run / "results.jsonl")]
    assert len(ids) == len(set(ids)) == 15
    fresh = tmp_path / "fresh"
    assert main(argv[3:-4] + [str(fresh), "--batch-size", "1", "--no-progress"]) == 0
    assert read_summary(run)["erank"] == read_summary(fresh)["erank"]


@pytest.mark.slow
def test_changed_settings_refuse_to_resume(tmp_path, load_tiny) -> None:
    adapter = load_tiny("qwen2_5_vl")
    score(adapter, SAMPLE, tmp_path / "r", limit=2, progress=False)
    with pytest.raises(RunDirError, match="seed"):
        score(adapter, SAMPLE, tmp_path / "r", limit=2, progress=False, resume=True, seed=1)


# ---- every data format through the whole pipeline -----------------------------------------


def _formats(root: Path) -> dict[str, tuple[Path, dict]]:
    """The same three bundled photos in every supported on-disk format."""
    rows = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines()][:3]
    images = [SAMPLE / r["file_name"] for r in rows]
    out: dict[str, tuple[Path, dict]] = {}
    (root / "m.jsonl").write_text("".join(
        json.dumps({"id": r["id"], "image": str(p), "text": r["text"]}) + "\n"
        for r, p in zip(rows, images)))
    out["jsonl"] = (root / "m.jsonl", {})
    (root / "m.csv").write_text("id,image,instruction,response\n" + "".join(
        f'{r["id"]},{p},Describe the image.,"{r["text"]}"\n' for r, p in zip(rows, images)))
    out["csv"] = (root / "m.csv", {})
    (root / "detail_23k.json").write_text(json.dumps([
        {"id": r["id"], "image": r["file_name"], "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."},
            {"from": "gpt", "value": r["text"]}]} for r in rows]))
    out["detail_23k"] = (root / "detail_23k.json", {"image_root": SAMPLE})
    cc = root / "cc_sbu_align"
    (cc / "image").mkdir(parents=True)
    for r, p in zip(rows, images):
        Image.open(p).convert("RGB").save(cc / "image" / f"{r['id']}.jpg")
    (cc / "filter_cap.json").write_text(json.dumps(
        {"annotations": [{"image_id": r["id"], "caption": r["text"]} for r in rows]}))
    out["cc_sbu_align"] = (cc, {})
    import datasets

    ds = datasets.Dataset.from_dict(
        {"image": [str(p) for p in images], "caption": [r["text"] for r in rows]}
    ).cast_column("image", datasets.Image())
    ds.save_to_disk(str(root / "hf"))
    out["save_to_disk"] = (root / "hf", {"text_column": "caption"})
    return out


@pytest.mark.slow
def test_every_format_scores(tmp_path, load_tiny) -> None:
    adapter = load_tiny("llava")
    for name, (path, options) in _formats(tmp_path).items():
        summary = score(adapter, path, tmp_path / f"run-{name}", progress=False, **options).summary
        assert summary["n_samples"] == 3 and summary["n_errors"] == 0, name
        assert summary["provenance"]["data"]["description"]


# ---- bad samples ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    photo = Image.open(SAMPLE / "chelsea.jpg").convert("RGB")
    photo.save(root / "good.jpg")
    photo.convert("CMYK").save(root / "cmyk.jpg")
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "alpha.png")
    gray16 = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(gray16).save(root / "gray16.png")
    data = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notanimage.jpg").write_text("hello")
    photo.resize((1, 40)).save(root / "sliver.png")
    photo.resize((600, 2)).save(root / "extreme.png")
    rows = [
        ("good", "good.jpg", "A cat with striped fur looks at the camera."),
        ("cmyk", "cmyk.jpg", "A cat, stored in CMYK."),
        ("palette", "palette.png", "A cat, stored with a palette."),
        ("alpha", "alpha.png", "A cat, half transparent."),
        ("gray16", "gray16.png", "A cat in sixteen-bit gray."),
        ("missing", "nowhere.jpg", "A file that does not exist."),
        ("truncated", "truncated.jpg", "Half of a JPEG file."),
        ("corrupt", "notanimage.jpg", "Text pretending to be a JPEG."),
        ("sliver", "sliver.png", "An image one pixel wide."),
        ("extreme", "extreme.png", "An image three hundred times wider than tall."),
        ("empty", "good.jpg", "   "),
        ("good2", "good.jpg", "The same cat again, with another caption."),
    ]
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps({"id": i, "image": f, "text": t}) + "\n" for i, f, t in rows))
    return path


EXPECTED_ERRORS = {
    "missing": ("load", "not found"),
    "truncated": ("load", "truncated"),
    "corrupt": ("load", ""),
    "sliver": ("load", "too small"),
    "empty": ("load", "text is empty"),
}


@pytest.mark.slow
def test_bad_samples_are_recorded_and_good_ones_scored(tmp_path, load_tiny, bad_manifest) -> None:
    score(load_tiny("qwen2_5_vl"), bad_manifest, tmp_path / "run", batch_size=4, progress=False)
    scored = {r["id"] for r in read_jsonl(tmp_path / "run" / "results.jsonl")}
    errors = {e["id"]: e for e in read_jsonl(tmp_path / "run" / "errors.jsonl")}
    assert {"good", "good2", "cmyk", "palette", "alpha", "gray16"} <= scored
    for sample_id, (stage, words) in EXPECTED_ERRORS.items():
        assert errors[sample_id]["stage"] == stage, errors[sample_id]
        assert words in errors[sample_id]["reason"], errors[sample_id]
    # An aspect ratio above --max-aspect-ratio (200) is refused from the header.
    assert errors["extreme"]["stage"] == "load" and "aspect ratio" in errors["extreme"]["reason"]
    assert scored | set(errors) == {json.loads(x)["id"] for x in bad_manifest.read_text().splitlines()}
    assert not scored & set(errors)


@pytest.mark.slow
def test_strict_stops_at_the_first_bad_sample(tmp_path, load_tiny, bad_manifest) -> None:
    with pytest.raises(ScoreError, match="'missing'"):
        score(load_tiny("qwen2_5_vl"), bad_manifest, tmp_path / "run", strict=True, progress=False)


def test_too_few_tokens_is_a_metric_error(tmp_path, load_tiny) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"id": "short", "image": str(SAMPLE / "coffee.jpg"), "text": "a"}) + "\n"
        + json.dumps({"id": "ok", "image": str(SAMPLE / "coffee.jpg"), "text": "A cup of coffee."})
        + "\n"
    )
    score(load_tiny("llava"), manifest, tmp_path / "run", progress=False)
    (error,) = read_jsonl(tmp_path / "run" / "errors.jsonl")
    assert error["id"] == "short" and error["stage"] == "metric"
    assert "text states (1 tokens)" in error["reason"] and "at least 2" in error["reason"]


@pytest.mark.slow
def test_all_failed_exits_non_zero_and_malformed_manifest_names_the_line(tmp_path, tiny_checkpoints, capsys) -> None:
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(json.dumps({"image": "nowhere.jpg", "text": "missing"}) + "\n")
    base = ["score", "--model", str(tiny_checkpoints["llava"]), "--no-progress"]
    assert main(base + ["--data", str(only_bad), "--out", str(tmp_path / "r1")]) == 1
    assert "none of the 1 samples could be scored" in capsys.readouterr().err
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text('{"image": "a.jpg", "text": "ok"}\n{"image": "b.jpg", "text": \n')
    assert main(base + ["--data", str(malformed), "--out", str(tmp_path / "r2")]) == 1
    assert "malformed.jsonl:2" in capsys.readouterr().err


# ---- layer sweep and controls ---------------------------------------------------------------


@pytest.mark.slow
def test_layer_sweep_last_layer_equals_default_and_summary(tmp_path, load_tiny, runs) -> None:
    adapter = load_tiny("qwen2_5_vl")
    summary = score(adapter, SAMPLE, tmp_path / "sweep", limit=6, batch_size=4, layers="all",
                    progress=False).summary
    last = str(adapter.num_hidden_states - 1)
    default = read_jsonl(runs["qwen2_5_vl"] / "results.jsonl")
    for swept, plain in zip(read_jsonl(tmp_path / "sweep" / "results.jsonl"), default, strict=True):
        assert sorted(swept["layers"]["image"], key=int) == [str(i) for i in range(int(last) + 1)]
        for stage in ("image", "text", "joint"):
            assert swept["layers"][stage][last] == pytest.approx(plain[f"erank_{stage}"], rel=1e-9)
    for stage in ("image", "text", "joint"):
        assert summary["layers"][stage][last] == pytest.approx(summary["erank"][stage], rel=1e-12)
    assert summary["layers"]["image_text_alignment"][last] == pytest.approx(
        summary["image_text_alignment"], rel=1e-12
    )
    # Per-layer intervals: the same resampled samples as the run's own intervals, so at the
    # last layer they equal the summary's ci95 of the three LLM stages and the alignment.
    for key in ("image", "text", "joint", "image_text_alignment"):
        name = key if key == "image_text_alignment" else f"erank_{key}"
        assert summary["layers_ci95"][key][last] == pytest.approx(summary["ci95"][name], rel=1e-12)


@pytest.mark.slow
def test_controls_write_sub_runs(tmp_path, load_tiny) -> None:
    run = tmp_path / "ctl"
    score(load_tiny("llava"), SAMPLE, run, limit=5, progress=False,
          controls=["shuffled", "image-only-noise", "rotate90"])
    real = read_jsonl(run / "results.jsonl")
    shuffled = read_jsonl(run / "controls" / "shuffled" / "results.jsonl")
    texts = [r["text"] for r in real]
    assert sorted(r["text"] for r in shuffled) == sorted(texts)
    assert all(s["text"] != r["text"] for s, r in zip(shuffled, real))
    for name in ("image-only-noise", "rotate90"):
        ctl = read_jsonl(run / "controls" / name / "results.jsonl")
        assert [r["text"] for r in ctl] == texts
        assert ctl[0]["erank_vision"] != real[0]["erank_vision"]
        assert read_summary(run / "controls" / name)["provenance"]["control"] == name


# ---- projector swap -------------------------------------------------------------------------


@pytest.mark.slow
def test_projector_swap_changes_and_restores(tmp_path, load_tiny, tiny_checkpoints) -> None:
    import torch
    from safetensors.torch import save_file

    from mm_align import load_vlm
    from mm_align.adapters.projector import ProjectorMismatchError, swap_projector

    adapter = load_tiny("llava")
    original = tmp_path / "original.safetensors"
    save_file({k: v.clone() for k, v in adapter.projector.state_dict().items()}, str(original))
    # Another design of the same shapes, saved the way LLaVA's training code saves it.
    other = load_vlm(str(tiny_checkpoints["llava"])).projector
    torch.manual_seed(123)
    legacy = {}
    for i, linear in ((0, other.linear_1), (2, other.linear_2)):  # nn.Sequential(lin, GELU, lin)
        legacy[f"model.mm_projector.{i}.weight"] = torch.randn_like(linear.weight)
        legacy[f"model.mm_projector.{i}.bias"] = torch.randn_like(linear.bias)
    torch.save(legacy, tmp_path / "mm_projector.bin")

    score(adapter, SAMPLE, tmp_path / "base", limit=3, progress=False)
    try:
        summary = score(adapter, SAMPLE, tmp_path / "swapped", limit=3, progress=False,
                        projector=tmp_path / "mm_projector.bin").summary
        assert summary["provenance"]["projector"]["tensors"] == 4
        assert torch.equal(adapter.projector.linear_1.weight, legacy["model.mm_projector.0.weight"])
    finally:
        swap_projector(adapter, original)
    score(adapter, SAMPLE, tmp_path / "restored", limit=3, progress=False)
    base, swapped, restored = (read_jsonl(tmp_path / n / "results.jsonl") for n in ("base", "swapped", "restored"))
    for b, s, r in zip(base, swapped, restored, strict=True):
        assert s["erank_projector"] != pytest.approx(b["erank_projector"], rel=1e-6)
        assert s["erank_vision"] == b["erank_vision"]  # the vision tower is untouched
        assert r == b
    bad = {"model.mm_projector.0.weight": torch.zeros(3, 3)}
    torch.save(bad, tmp_path / "bad.bin")
    with pytest.raises(ProjectorMismatchError, match="missing"):
        swap_projector(adapter, tmp_path / "bad.bin")
    wrong_shape = dict(legacy, **{"model.mm_projector.2.weight": torch.zeros(5, 5)})
    torch.save(wrong_shape, tmp_path / "shape.bin")
    with pytest.raises(ProjectorMismatchError, match="shape mismatch"):
        swap_projector(adapter, tmp_path / "shape.bin")


# ---- trained vs untrained LLM -----------------------------------------------------------------


@pytest.mark.slow
def test_untrained_baseline(tmp_path, load_tiny) -> None:
    import torch

    adapter = load_tiny("llava")
    run = tmp_path / "run"
    summary = score(adapter, SAMPLE, run, limit=4, progress=False, baseline="untrained", seed=7).summary
    real = read_jsonl(run / "results.jsonl")
    base = read_jsonl(run / "controls" / "untrained" / "results.jsonl")
    for r, b in zip(real, base, strict=True):
        assert b["erank_vision"] == r["erank_vision"]  # vision tower and projector untouched
        assert b["erank_projector"] == r["erank_projector"]
        assert b["erank_text"] != pytest.approx(r["erank_text"], rel=1e-6)
    for stage in ("image", "text", "joint"):
        d = summary["diff_erank"][f"erank_{stage}"]
        want = math.exp(sum(x[f"entropy_{stage}"] for x in base) / 4) - math.exp(
            sum(x[f"entropy_{stage}"] for x in real) / 4)
        assert d["diff"] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert d["ci95"][0] <= d["diff"] <= d["ci95"][1]
    assert summary["diff_erank"]["n_paired"] == 4
    assert "Diff-eRank of the LLM" in (run / "report.html").read_text()

    # Independently: a Llama built from the text config under the same seed, run on the
    # text-only input, gives the untrained text eRank.
    sample = next(iter(open_dataset(SAMPLE)))
    image, text = sample.load()
    rep = adapter.represent(image, text)
    llm = adapter.language_model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        fresh = type(llm)(llm.config).eval()
    with torch.no_grad():
        hidden = fresh(**rep.inputs["text"], output_hidden_states=True).hidden_states[-1][0]
    states = hidden[rep.masks["text"]].double().numpy()
    assert base[0]["erank_text"] == pytest.approx(official_erank(states), rel=1e-6)
    # And the trained LLM is back in place.
    assert adapter.represent(image, text)["text"].equal(rep["text"])
    score(adapter, SAMPLE, tmp_path / "after", limit=4, progress=False, seed=7)
    assert read_jsonl(tmp_path / "after" / "results.jsonl") == real


# ---- report and compare on real tiny-model runs ----------------------------------------------


@pytest.mark.slow
def test_report_of_a_real_run_is_self_contained(runs) -> None:
    from tests.helpers import parse

    page = parse(runs["qwen2_5_vl"] / "report.html")
    text = " ".join(page.text)
    assert page.scripts == 1 and page.external == []  # one inline script, nothing fetched
    assert len(page.imgs) >= 5 and all(src.startswith("data:image/") for src in page.imgs)
    for key in ("erank_vision", "erank_projector", "erank_image", "erank_text", "erank_joint",
                "image_reduction_ratio", "image_text_alignment"):
        assert key in text
    assert "RANDOM WEIGHTS" in text


@pytest.mark.slow
def test_compare_two_tiny_checkpoints(tmp_path, runs, load_tiny) -> None:
    from mm_align import compare as compare_runs

    other = tmp_path / "qwen-seed1"
    assert main(["tiny", "qwen2_5_vl", str(other), "--seed", "1"]) == 0
    score(str(other), SAMPLE, tmp_path / "run-seed1", limit=6, batch_size=4, progress=False)
    out = compare_runs([runs["qwen2_5_vl"], tmp_path / "run-seed1"], tmp_path / "cmp")
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    (diff,) = doc["differences"]
    assert diff["mode"] == "paired" and diff["n_shared"] == 6
    a = read_summary(runs["qwen2_5_vl"])["erank"]
    b = read_summary(tmp_path / "run-seed1")["erank"]
    for stage in STAGES:
        m = diff["metrics"][f"erank_{stage}"]
        assert m["diff"] == pytest.approx(b[stage] - a[stage], rel=1e-9) and m["diff"] != 0
        assert m["ci95"][0] < m["ci95"][1] and 0 <= m["p_value"] <= 1
    assert out.exists() and (tmp_path / "cmp" / "compare.html").exists()
    compare_runs([runs["qwen2_5_vl"], runs["qwen2_5_vl"]], tmp_path / "self", labels=["a", "b"])
    (same,) = json.loads((tmp_path / "self" / "compare.json").read_text())["differences"]
    for m in same["metrics"].values():
        assert m["diff"] == 0 and m["ci95"] == [0, 0] and m["p_value"] == 1


@pytest.mark.slow
def test_untrained_llm_is_seeded_and_always_restored(load_tiny) -> None:
    import torch

    adapter = load_tiny("llava")
    trained = adapter.language_model
    state = torch.get_rng_state()
    with adapter.untrained_llm(3) as first:
        w1 = next(first.language_model.parameters()).clone()
    with adapter.untrained_llm(3) as again:
        assert torch.equal(next(again.language_model.parameters()), w1)
    with pytest.raises(KeyError), adapter.untrained_llm(4) as other:
        assert not torch.equal(next(other.language_model.parameters()), w1)
        raise KeyError("boom")
    assert adapter.language_model is trained
    assert any(m is trained for m in adapter.model.modules())
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
