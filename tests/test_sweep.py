"""``mm-align sweep``: members equal separate ``score`` runs, the vision tower runs once per
batch for a whole projector sweep, resume and the trend report.

The vision tower is counted with a global forward hook on its class, outside mm-align's
code, and every member is checked against an ordinary ``score`` run of the same model."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import mm_align
from mm_align.adapters.vision_cache import FeatureStore, reusing_vision, vision_identity
from mm_align.cli import main
from mm_align.rundir import RunDirError
from tests.helpers import FLOAT64, SAMPLE, assert_same_run

RUN = {"limit": 5, "batch_size": 2, "n_boot": 50, "progress": False}
VISION_TOWERS = {"llava": "vision_tower", "qwen2_5_vl": "visual"}


@contextmanager
def tower_calls(tower_class: type) -> Iterator[list[int]]:
    """Counts forward calls of any module of ``tower_class`` (a global hook: it sees the
    models the pipeline loads itself)."""
    calls: list[int] = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, _args, _out: calls.append(1) if type(module) is tower_class else None)
    try:
        yield calls
    finally:
        handle.remove()


def _projectors(tmp_path: Path, adapter, n: int) -> list[Path]:
    """``n`` projector files: the checkpoint's own weights plus seeded noise of growing size."""
    state = adapter.projector.state_dict()
    gen = torch.Generator().manual_seed(7)
    paths = []
    for i in range(n):
        path = tmp_path / f"proj-{i}.safetensors"
        save_file({k: (v + 0.05 * i * torch.randn(v.shape, generator=gen)).contiguous() for k, v in state.items()},
                  str(path))
        paths.append(path)
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("family, n, dtype", [("llava", 3, "float32"), ("qwen2_5_vl", 2, "float32"),
                                              ("llava", 2, "bfloat16")])
def test_projector_sweep_runs_the_vision_tower_n_times_fewer(tmp_path, load_tiny, tiny_checkpoints,
                                                             family, n, dtype) -> None:
    """bfloat16: replay must hand the connector its input with the real call's strides (a
    contiguous copy of LLaVA's [:, 1:] view rounds differently in a bf16 matmul)."""
    adapter = load_tiny(family)
    run = {**RUN, "dtype": dtype}
    tower = type(getattr(adapter.model.model, VISION_TOWERS[family]))
    projectors = _projectors(tmp_path, adapter, n)
    with tower_calls(tower) as alone_calls:
        for path in projectors:
            mm_align.score(tiny_checkpoints[family], SAMPLE, tmp_path / "alone" / path.stem,
                           projector=str(path), **run)
    with tower_calls(tower) as sweep_calls:
        doc = mm_align.sweep(tiny_checkpoints[family], SAMPLE, tmp_path / "sweep", projectors=projectors, **run)
    batches = math.ceil(RUN["limit"] / RUN["batch_size"])
    assert len(alone_calls) == n * batches
    assert len(sweep_calls) == batches  # once per batch for the whole sweep
    assert doc["vision_reuse"] == {"enabled": True, "computed": batches, "reused": (n - 1) * batches}
    assert [m["vision"]["checked"] for m in doc["members"]] == [True] + [False] * (n - 1)
    for path in projectors:
        assert_same_run(tmp_path / "sweep" / "members" / path.stem, tmp_path / "alone" / path.stem, FLOAT64)
    # the members differ: the projectors do
    eranks = [m["metrics"]["erank_projector"] for m in doc["members"]]
    assert len(set(eranks)) == n
    assert [d["label"] for d in doc["comparison"]["differences"]] == [p.stem for p in projectors[1:]]
    assert (tmp_path / "sweep" / "report.html").is_file()


@pytest.mark.slow
def test_a_model_that_does_not_replay_is_scored_without_reuse(tmp_path, load_tiny, tiny_checkpoints) -> None:
    """LLaVA-NeXT adds rows after its connector (image newlines): the check refuses replay,
    the sweep says why and still gives the numbers of separate runs."""
    projectors = _projectors(tmp_path, load_tiny("llava_next"), 2)
    doc = mm_align.sweep(tiny_checkpoints["llava_next"], SAMPLE, tmp_path / "sweep", projectors=projectors, **RUN)
    for member, path in zip(doc["members"], projectors):
        assert "changes the connector's rows" in member["vision"]["problem"]
        assert member["vision"]["reused"] == 0
        mm_align.score(tiny_checkpoints["llava_next"], SAMPLE, tmp_path / path.stem, projector=str(path), **RUN)
        assert_same_run(tmp_path / "sweep" / "members" / path.stem, tmp_path / path.stem, FLOAT64)


@pytest.mark.slow
def test_checkpoint_sweep_glob_order_steps_resume(tmp_path, tiny_checkpoints) -> None:
    """A glob's folders in natural order, placed by step; the shared vision tower of two
    checkpoints is reused across them; resume skips finished members."""
    for step in (10, 2):
        shutil.copytree(tiny_checkpoints["llava"], tmp_path / f"ckpt-{step}")
    out = tmp_path / "sweep"
    doc = mm_align.sweep(str(tmp_path / "ckpt-*"), SAMPLE, out, **{**RUN, "layers": "all"})
    assert [m["name"] for m in doc["members"]] == ["ckpt-2", "ckpt-10"]
    assert "Per-layer eRank and alignment" in (out / "report.html").read_text()
    assert [m["step"] for m in doc["members"]] == [2, 10] and doc["x"] == "step"
    assert doc["members"][1]["vision"]["computed"] == 0  # same tower: all replayed
    batches = math.ceil(RUN["limit"] / RUN["batch_size"])
    assert len(list((out / "features").glob("*/*.safetensors"))) == batches  # kept: it was shared
    assert_same_run(out / "members" / "ckpt-2", out / "members" / "ckpt-10", FLOAT64)
    with pytest.raises(RunDirError, match="--resume"):
        mm_align.sweep(str(tmp_path / "ckpt-*"), SAMPLE, out, **{**RUN, "layers": "all"})
    (out / "members" / "ckpt-10" / "summary.json").unlink()  # as if interrupted before its end
    again = mm_align.sweep(str(tmp_path / "ckpt-*"), SAMPLE, out, resume=True, **{**RUN, "layers": "all"})
    assert again["members"][0]["vision"] is None  # finished: skipped
    assert again["members"][1]["vision"]["computed"] == 0
    assert again["members"][1]["metrics"] == doc["members"][1]["metrics"]


@pytest.mark.slow
def test_cli_sweep_and_its_errors(tmp_path, tiny_checkpoints, load_tiny, capsys) -> None:
    projectors = _projectors(tmp_path, load_tiny("llava"), 2)
    args = ["sweep", "--model", str(tiny_checkpoints["llava"]), "--data", str(SAMPLE), "--limit", "3",
            "--n-boot", "20", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "s"), *(a for p in projectors for a in ("--projector", str(p)))]) == 0
    printed = capsys.readouterr().out
    assert "proj-0" in printed and "proj-1" in printed and "replayed from cache: " in printed
    # a sweep's folder stands for its members in export and compare
    assert main(["export", str(tmp_path / "s"), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 3 and rows[1].startswith("proj-0") and rows[2].startswith("proj-1")
    assert main(["compare", str(tmp_path / "s"), "--out", str(tmp_path / "cmp")]) == 0
    compared = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [d["label"] for d in compared["differences"]] == ["proj-1"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "t"), "--model", "x", "--projector", str(projectors[0])]) == 1
    assert "one base --model" in capsys.readouterr().err
    assert main(["sweep", "--model", str(tmp_path / "nothing-*"), "--data", str(SAMPLE), "--out",
                 str(tmp_path / "u")]) == 1
    assert "matches no checkpoint folder" in capsys.readouterr().err


def test_vision_identity_and_store(tmp_path, load_tiny, images) -> None:
    """The identity ignores the projector, not the vision tower; stored calls round-trip."""
    adapter = load_tiny("llava")
    before = vision_identity(adapter)
    with torch.no_grad():
        weight = next(adapter.projector.parameters())
        weight.add_(1.0)
        assert vision_identity(adapter) == before
        weight.sub_(1.0)
        tower = next(adapter.model.model.vision_tower.parameters())
        tower.add_(1.0)
        assert vision_identity(adapter) != before
        tower.sub_(1.0)
    store = FeatureStore(tmp_path / "features")
    with reusing_vision(adapter, store) as stats:
        first = adapter.represent(images[0], "a photo")
        again = adapter.represent(images[0], "a photo")
        adapter.represent(images[1], "a photo")
    assert (stats.computed, stats.reused) == (2, 1)
    files = sorted((tmp_path / "features").rglob("*.safetensors"))
    assert len(files) == 2
    for file in files:  # damaged files are computed anew, not an error
        file.write_bytes(file.read_bytes()[:100])
    with reusing_vision(adapter, store) as damaged:
        adapter.represent(images[0], "a photo")
    assert (damaged.computed, damaged.reused) == (1, 0)
    for stage in first:
        assert torch.equal(first[stage], again[stage])


REPLAYING = {"aya_vision", "cohere2_vision", "gemma3", "idefics3", "llava", "paligemma", "qwen2_vl",
             "qwen2_5_vl", "qwen3_5", "smolvlm"}
"""The families whose vision tower is replayed (docs/CHOICES.md lists the others and why)."""


@pytest.mark.slow
def test_every_family_replays_exactly_or_says_why(family, tiny_checkpoints, images, texts) -> None:
    """Features recorded under one projector, replayed under another, in bfloat16: the
    states equal a real pass of the second projector bit for bit (or replay is off)."""
    adapter = mm_align.load_vlm(tiny_checkpoints[family], dtype="bfloat16")
    store = FeatureStore()
    with reusing_vision(adapter, store) as first:
        adapter.represent_batch(images[:2], texts[:2], layers=[1])
    assert first.checked or first.problem
    assert (first.problem is None) == (family in REPLAYING), first.problem
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # another projector
        for weight in adapter.projector.parameters():
            weight.add_((0.05 * torch.randn(weight.shape, generator=gen)).to(weight.dtype))
    real = adapter.represent_batch(images[:2], texts[:2], layers=[1])  # no cache at all
    with reusing_vision(adapter, store) as second:
        replayed = adapter.represent_batch(images[:2], texts[:2], layers=[1])
    # every call replayed (PaliGemma makes two: the joint pass and the image prefix's), or none
    assert (second.reused > 0 and second.computed == 0) == (family in REPLAYING)
    for a, b in zip(real, replayed):
        for stage in a:
            assert torch.equal(b[stage], a[stage]), stage
        assert torch.equal(b.layer("joint", 1), a.layer("joint", 1))


def test_members_hub_ids_revisions_and_clashes(tmp_path) -> None:
    from mm_align.config import SweepConfig
    from mm_align.pipeline.sweep import members_of

    config = SweepConfig(models=("org/model@v1", "org/model@v2", "other/model"), data="d", out="o")
    members = members_of(config)
    assert [(m.model, m.revision) for m in members] == [("org/model", "v1"), ("org/model", "v2"),
                                                        ("other/model", None)]
    assert [m.name for m in members] == ["model_v1", "model_v2", "model"]
    with pytest.raises(ValueError, match="share the folder name model"):
        members_of(SweepConfig(models=("a/model", "b/model"), data="d", out="o"))
    with pytest.raises(ValueError, match="projector file not found"):
        members_of(SweepConfig(models=("m",), projectors=(str(tmp_path / "missing.bin"),), data="d", out="o"))


@pytest.mark.slow
def test_a_failing_member_is_recorded_and_the_sweep_goes_on(tmp_path, load_tiny, tiny_checkpoints) -> None:
    """A projector file that does not fit the model: its member fails with the reason, the
    others are scored, the report says so."""
    good = _projectors(tmp_path, load_tiny("llava"), 2)
    bad = tmp_path / "proj-wrong.safetensors"
    save_file({"linear_1.weight": torch.zeros(3, 3)}, str(bad))
    doc = mm_align.sweep(tiny_checkpoints["llava"], SAMPLE, tmp_path / "sweep",
                         projectors=[good[0], bad, good[1]], **RUN)
    assert [m["name"] for m in doc["members"]] == ["proj-0", "proj-1"]
    assert "does not match the model's projector" in doc["failed"]["proj-wrong"]
    assert "proj-wrong failed" in (tmp_path / "sweep" / "report.html").read_text()
    with pytest.raises(Exception, match="does not match"):
        mm_align.sweep(tiny_checkpoints["llava"], SAMPLE, tmp_path / "strict", projectors=[bad, good[0]],
                       strict=True, **RUN)


@pytest.mark.slow
def test_features_of_towers_no_member_shared_are_deleted(tmp_path, tiny_checkpoints) -> None:
    """Two checkpoints with different vision towers: nothing to replay, nothing left on disk."""
    from safetensors.torch import load_file
    from safetensors.torch import save_file as save

    for name, shift in (("ckpt-1", 0.0), ("ckpt-2", 0.01)):
        folder = tmp_path / name
        shutil.copytree(tiny_checkpoints["llava"], folder)
        weights = load_file(str(folder / "model.safetensors"))
        save({k: v + shift if "vision_tower" in k and v.is_floating_point() else v for k, v in weights.items()},
             str(folder / "model.safetensors"), metadata={"format": "pt"})
    doc = mm_align.sweep(str(tmp_path / "ckpt-*"), SAMPLE, tmp_path / "sweep", **RUN)
    identities = {m["vision"]["identity"] for m in doc["members"]}
    assert len(identities) == 2 and all(m["vision"]["reused"] == 0 for m in doc["members"])
    assert list((tmp_path / "sweep" / "features").rglob("*.safetensors")) == []
