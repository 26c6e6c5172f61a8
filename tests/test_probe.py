"""``mm_align.Probe`` and the Trainer callback on real models: a live model's scalars equal
``mm_align.score`` of the same weights saved and reloaded, and the training around the probe
is bit for bit the one without it (modes, random generators, autocast handed back)."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import mm_align
from mm_align.cli import main
from mm_align.pipeline.live import ShardedModelError
from mm_align.pipeline.probe import PREFIX, Probe, probe_scalars
from mm_align.stages import METRICS

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
PROBE_OPTIONS = {"limit": 4, "n_boot": 50}
# what stands for the image in a training prompt (Qwen's rope index looks for vision_start)
IMAGE_PROMPT = {"llava": "<image>", "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """family -> its tiny checkpoint folder, built on first use."""
    root = tmp_path_factory.mktemp("probe-tiny")

    def build(family: str) -> Path:
        path = root / family
        if not path.exists():
            assert main(["tiny", family, str(path), "--seed", "0"]) == 0
        return path

    return build


def _load(path: Path) -> tuple[Any, Any]:
    from transformers import AutoProcessor

    from mm_align.adapters import adapter_class

    config = json.loads((path / "config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = adapter_class(config["model_type"]).model_class.from_pretrained(path)
    return model, AutoProcessor.from_pretrained(path)


def _reference(checkpoint: Path) -> dict[str, float]:
    """``mm_align.score`` of a checkpoint folder on the probe set, flattened."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mm_align.score(checkpoint, str(SAMPLE), progress=False, **PROBE_OPTIONS)
    return probe_scalars(result.summary)


def _generators() -> tuple[Any, ...]:
    return torch.rand(3), np.random.rand(3), random.random()


def test_probe_scalars_names_and_skips_non_finite() -> None:
    summary = {"erank": {"vision": 3.0, "projector": 2.0, "image": 1.5, "text": 4.0, "joint": 5.0},
               "image_reduction_ratio": 0.25, "image_text_alignment": float("nan"),
               "metrics": {"rankme": {"mean": {"image": 2.5}, "ci95": {"image": [2, 3]}},
                           "cka": {"value": 0.5}, "mir": {"skipped": "why"}},
               "layers": {"image_text_alignment": {"0": 0.1, "2": 0.2}}}
    assert probe_scalars(summary) == {
        "mm_align/erank_vision": 3.0, "mm_align/erank_projector": 2.0, "mm_align/erank_image": 1.5,
        "mm_align/erank_text": 4.0, "mm_align/erank_joint": 5.0, "mm_align/image_reduction_ratio": 0.25,
        "mm_align/rankme_image": 2.5, "mm_align/cka": 0.5,
        "mm_align/image_text_alignment_layer0": 0.1, "mm_align/image_text_alignment_layer2": 0.2}


def test_probe_of_a_live_model_equals_score_and_hands_everything_back(tiny: Any) -> None:
    """Under CPU autocast, in training mode with a frozen tower in eval mode, seeded
    generators: the probe equals `score` of the checkpoint (loaded anew, float32) and the
    model, the generators and autocast are as before."""
    checkpoint = tiny("llava")
    model, processor = _load(checkpoint)
    model.train()
    model.model.vision_tower.eval()  # a frozen tower: its own mode must survive too
    modes = {name: m.training for name, m in model.named_modules()}
    probe = Probe(str(SAMPLE), **PROBE_OPTIONS)

    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    expected_draws = _generators()
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scalars = probe(model, processor, step=3)
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    draws = _generators()

    assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b)
               for a, b in zip(draws, expected_draws))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(p.grad is None for p in model.parameters())
    assert set(scalars) == {PREFIX + k for k in METRICS}
    assert scalars == pytest.approx(_reference(checkpoint), rel=0, abs=1e-6)


def test_probe_unwraps_ddp_and_accelerate_mixed_precision(tiny: Any) -> None:
    """A model in DDP (one gloo process) and one prepared by accelerate for bf16 (its
    forward wrapped in autocast) are scored as the plain float32 model."""
    import torch.distributed as dist
    from accelerate import Accelerator
    from torch.nn.parallel import DistributedDataParallel

    model, processor = _load(tiny("llava"))
    pairs = [(Image.open(SAMPLE / "coffee.jpg"), "A cup of coffee on a saucer."),
             (Image.open(SAMPLE / "rocket.jpg"), "A rocket on its launch pad.")]
    probe = Probe(pairs, processor=processor, n_boot=50)
    plain = probe(model)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29533", rank=0, world_size=1)
    try:
        assert probe(DistributedDataParallel(model)) == plain
    finally:
        dist.destroy_process_group()
    wrapped = Accelerator(mixed_precision="bf16", cpu=True).prepare_model(model)
    forward = wrapped.forward
    assert probe(wrapped) == plain
    assert wrapped.forward == forward  # the mixed-precision forward is put back


def test_probe_refuses_sharded_weights_and_leaves_other_processes_out(
        tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ZeRO-3 marks each parameter with its ``ds_id``: a shard is not the model. A process
    other than the main one returns at once, the model untouched (still in training mode)."""
    model, processor = _load(tiny("llava"))
    probe = Probe(str(SAMPLE), processor=processor, **PROBE_OPTIONS)
    first = next(model.parameters())
    first.ds_id = 0  # type: ignore[attr-defined]
    with pytest.raises(ShardedModelError, match="sharded over the processes"):
        probe(model)
    del first.ds_id
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert probe(model.train()) == {} and model.training and probe.calls == 0


def test_probe_refuses_a_foreign_folder_and_bad_options(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(mm_align.rundir.RunDirError, match="holds other files"):
        Probe(str(SAMPLE), out=tmp_path)
    with pytest.raises(TypeError, match="unknown option"):
        Probe(str(SAMPLE), every_n_steps=3)


# ---- a real Trainer ------------------------------------------------------------------------


def _train_set(processor: Any, family: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines()]
    return [{"image": Image.open(SAMPLE / r["file_name"]).convert("RGB"),
             "text": IMAGE_PROMPT[family] + r["text"]} for r in rows[:8]]


def _collator(processor: Any, image_token_id: int) -> Any:
    def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = processor(text=[r["text"] for r in rows], images=[r["image"] for r in rows],
                          return_tensors="pt", padding=True)
        labels = batch["input_ids"].clone()
        labels[(batch["attention_mask"] == 0) | (labels == image_token_id)] = -100
        return {**batch, "labels": labels}

    return collate


def _train(checkpoint: Path, family: str, out: Path, callback: dict[str, Any] | None) -> Any:
    """10 steps of a real Trainer on the bundled photos, logging every step, saving at 10;
    with ``callback``, the AlignmentCallback (every 5 steps) and a recorder of the model's
    mode at every step end (after the probe)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from mm_align.integrations.transformers import AlignmentCallback

    model, processor = _load(checkpoint)
    args = TrainingArguments(
        output_dir=str(out), max_steps=10, per_device_train_batch_size=2, learning_rate=1e-3,
        logging_steps=1, save_steps=10, save_strategy="steps", report_to=["tensorboard"] if callback else [],
        use_cpu=True, seed=0, data_seed=0, dataloader_num_workers=0,
        remove_unused_columns=False, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=_train_set(processor, family),
                      data_collator=_collator(processor, model.config.image_token_id),
                      processing_class=processor)
    modes: list[bool] = []

    class Modes(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            modes.append(all(m.training for m in kwargs["model"].modules()))

    if callback is not None:
        AlignmentCallback(str(SAMPLE), every_n_steps=5, **callback, **PROBE_OPTIONS).attach(trainer)
        trainer.add_callback(Modes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    trainer.modes = modes  # type: ignore[attr-defined]
    return trainer


def _tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for events in folder.rglob("events.out.tfevents.*"):
        reader = EventAccumulator(str(events))
        reader.Reload()
        for tag in reader.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in reader.Scalars(tag)})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_trainer_callback_logs_scalars_without_changing_the_training(
        family: str, tiny: Any, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    checkpoint = tiny(family)
    series = tmp_path / "series"
    probed = _train(checkpoint, family, tmp_path / "with", {"out": series})
    plain = _train(checkpoint, family, tmp_path / "without", None)

    history = probed.state.log_history
    logged = {h["step"]: h for h in history if any(k.startswith(PREFIX) for k in h)}
    assert sorted(logged) == [5, 10]
    assert {k for k in logged[10] if k.startswith(PREFIX)} == {PREFIX + k for k in METRICS}
    # the live model at step 10 is the checkpoint saved at step 10
    step10 = {k: v for k, v in logged[10].items() if k.startswith(PREFIX)}
    assert step10 == pytest.approx(_reference(tmp_path / "with" / "checkpoint-10"), rel=0, abs=1e-6)
    assert logged[5] != logged[10]  # the model did train between the probes

    def losses(trainer: Any) -> list[tuple[int, float, float]]:
        return [(h["step"], h["loss"], h["grad_norm"]) for h in trainer.state.log_history if "loss" in h]

    assert len(losses(plain)) == 10
    assert losses(probed) == losses(plain)  # bit for bit
    assert probed.modes == [True] * 10

    board = _tensorboard_scalars(tmp_path / "with")
    assert set(board[f"train/{PREFIX}image_text_alignment"]) == {5, 10}
    for key, value in step10.items():
        assert board[f"train/{key}"][10] == pytest.approx(value, rel=1e-6)  # stored as float32

    page = mm_align.write_report(series)
    doc = json.loads((series / "sweep.json").read_text())
    assert [m["step"] for m in doc["members"]] == [5, 10] and doc["x"] == "step"
    assert doc["members"][1]["metrics"] == pytest.approx(
        {k.removeprefix(PREFIX): v for k, v in step10.items()}, abs=1e-12)
    html = page.read_text()
    assert "metrics across the sweep" in html and "step-10/report.html" in html
    assert (series / "members" / "step-10" / "report.html").is_file()
