"""Adapter behaviour shared by every family, checked on tiny random-weight checkpoints against
computations independent of the adapter's hooks (``output_hidden_states=True``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mm_align import load_vlm
from mm_align.adapters import (
    STAGES,
    AdapterInputError,
    UnsupportedModelError,
    adapter_class,
    supported_families,
)
from mm_align.metrics import erank
from tests.helpers import FLOAT32, families

FP32 = {"rtol": FLOAT32, "atol": FLOAT32}
PER_TOKEN = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


def hidden_states(adapter, inputs) -> tuple[torch.Tensor, ...]:
    """The reference: every LLM hidden state of one unpadded input (batch dim 1 dropped)."""
    with torch.inference_mode():
        out = adapter.model(**inputs, output_hidden_states=True)
    return tuple(h[0] for h in out.hidden_states)


def image_only_inputs(rep) -> dict[str, torch.Tensor]:
    """The joint input cut after its last image token: the image seen alone."""
    cut = int(torch.nonzero(rep.masks["image"]).max()) + 1
    return {key: value[:, :cut] if key in PER_TOKEN else value for key, value in rep.inputs["joint"].items()}


PAIRS = [(f, p) for f in families() for p in adapter_class(f).prompt_styles]
_BATCHES: dict[tuple[str, str], tuple] = {}


def _represented(load_tiny, images, texts, family: str, prompt: str) -> tuple:
    """(adapter, its Representations of the 4 photos in one batch), computed once per session."""
    if (family, prompt) not in _BATCHES:
        adapter = load_tiny(family, prompt=prompt)
        _BATCHES[family, prompt] = adapter, adapter.represent_batch(images, texts, layers=[0, 1])
    return _BATCHES[family, prompt]


@pytest.fixture(scope="module", params=PAIRS, ids=lambda fp: "-".join(fp))
def batch(request, load_tiny, images, texts):
    return _represented(load_tiny, images, texts, *request.param)


@pytest.fixture(scope="module", params=families())
def plain_batch(request, load_tiny, images, texts):
    return _represented(load_tiny, images, texts, request.param, "plain")


@pytest.mark.slow
def test_llm_stages_equal_output_hidden_states(batch) -> None:
    adapter, reps = batch
    for rep in reps:
        joint = hidden_states(adapter, rep.inputs["joint"])
        text = hidden_states(adapter, rep.inputs["text"])
        image = joint if adapter.image_prefix_is_image_only else hidden_states(adapter, image_only_inputs(rep))
        image_mask = rep.masks["image"][: image[0].shape[0]]
        assert len(joint) == adapter.num_hidden_states == 3
        assert rep.layers == (0, 1, 2)
        for layer in (0, 1, 2, -1):
            torch.testing.assert_close(rep.layer("image", layer), image[layer][image_mask], **FP32)
            torch.testing.assert_close(rep.layer("joint", layer), joint[layer][rep.masks["joint"]], **FP32)
            torch.testing.assert_close(rep.layer("text", layer), text[layer][rep.masks["text"]], **FP32)
            # Every position of the joint pass, special and template tokens included (MIR's rows).
            torch.testing.assert_close(rep.joint_sequence(layer), joint[layer], **FP32)
        torch.testing.assert_close(rep["joint"], joint[-1][rep.masks["joint"]], **FP32)
        torch.testing.assert_close(rep["text"], text[-1][rep.masks["text"]], **FP32)
        # The image features enter the LLM unchanged at the image positions.
        is_image = rep.inputs["joint"]["input_ids"][0] == adapter.image_token_id
        torch.testing.assert_close(joint[0][is_image], rep["projector"], **FP32)


@pytest.mark.slow
def test_image_stage_is_the_image_seen_alone_and_the_declaration_holds(batch) -> None:
    adapter, reps = batch
    for rep in reps:
        image_only = image_only_inputs(rep)
        alone = hidden_states(adapter, image_only)[-1][rep.masks["image"][: image_only["input_ids"].shape[1]]]
        in_joint = hidden_states(adapter, rep.inputs["joint"])[-1][rep.masks["image"]]
        torch.testing.assert_close(rep["image"], alone, **FP32)
        # The class attribute says whether the joint pass's image states are the image alone.
        same = torch.allclose(in_joint, alone, **FP32)
        assert same == adapter.image_prefix_is_image_only, (adapter.model_type, same)


@pytest.mark.slow
def test_masks(batch, texts) -> None:
    adapter, reps = batch
    tokenizer = adapter.processor.tokenizer
    for rep, text in zip(reps, texts):
        joint_ids = rep.inputs["joint"]["input_ids"][0]
        text_ids = rep.inputs["text"]["input_ids"][0]
        is_image = joint_ids == adapter.image_token_id
        assert rep.masks["image"].dtype == torch.bool and rep.masks["image"].dim() == 1
        assert int(is_image.sum()) == rep["projector"].shape[0]
        # Position 0 is never counted (PaliGemma's joint pass begins with an image token).
        assert torch.equal(rep.masks["image"], is_image & (torch.arange(len(joint_ids)) > 0))
        assert int(rep.masks["image"].sum()) == rep["image"].shape[0]
        # The text's tokens, with position 0 where the pass begins with the text (no BOS).
        text_tokens = rep.masks["text"].clone()
        if tokenizer.decode(text_ids[text_tokens]) != text:
            text_tokens[0] = True
        assert tokenizer.decode(text_ids[text_tokens]) == text
        text_in_joint = rep.masks["joint"] & ~rep.masks["image"]
        assert tokenizer.decode(joint_ids[text_in_joint]) == text
        # Plain prompt: the text directly follows the image, so both passes tokenize it alike.
        if adapter.prompt == "plain":
            assert torch.equal(joint_ids[text_in_joint], text_ids[text_tokens])
        for special in tokenizer.all_special_ids:
            assert special not in text_ids[rep.masks["text"]].tolist()
        assert rep["vision"].dim() == rep["projector"].dim() == 2
        assert rep["image"].shape[1] == rep["text"].shape[1] == rep["joint"].shape[1] == rep["projector"].shape[1]


@pytest.mark.slow
def test_batch_of_4_equals_one_at_a_time(plain_batch, images, texts) -> None:
    adapter, reps = plain_batch
    for image, text, batched in zip(images, texts, reps):
        single = adapter.represent(image, text, layers=[0, 1])
        for stage in STAGES:
            torch.testing.assert_close(batched[stage], single[stage], **FP32)
        for stage in ("image", "text", "joint"):
            torch.testing.assert_close(batched.layer(stage, 1), single.layer(stage, 1), **FP32)
        for name in ("joint", "text"):
            assert batched.inputs[name].keys() == single.inputs[name].keys()
            for key, value in single.inputs[name].items():
                assert torch.equal(batched.inputs[name][key], value)
                if key == "input_ids":
                    assert value.shape[0] == 1


@pytest.mark.slow
def test_include_special_covers_every_token(family, load_tiny, images, texts) -> None:
    adapter = load_tiny(family, include_special=True)
    rep = adapter.represent(images[1], texts[1])
    # Every token but position 0 (see test_adapters_conventions).
    assert bool(rep.masks["joint"][1:].all()) and bool(rep.masks["text"][1:].all())
    assert int((rep.inputs["joint"]["input_ids"][0] == adapter.image_token_id).sum()) == rep["projector"].shape[0]
    plain = load_tiny(family).represent(images[1], texts[1])
    # LLaVA's plain prompt is BOS, image, text: without position 0, nothing more to cover.
    assert rep["joint"].shape[0] == rep.inputs["joint"]["input_ids"].shape[1] - 1 >= plain["joint"].shape[0]


@pytest.mark.slow
def test_representation_mapping_and_layers(family, load_tiny, images, texts) -> None:
    adapter = load_tiny(family)
    rep = adapter.represent(images[0], texts[0])
    assert list(rep) == list(STAGES) and len(rep) == 5
    assert rep.layers == (2,)
    # The tiny checkpoint is random, not degenerate: every stage has a spectrum to measure.
    assert all(erank(rep[stage]) > 1.5 for stage in STAGES), {stage: rep[stage].shape for stage in STAGES}
    assert all(rep[stage].dtype == torch.float32 and rep[stage].device == adapter.device for stage in STAGES)
    torch.testing.assert_close(rep.layer("joint", -1), rep["joint"])
    with pytest.raises(KeyError, match="not captured"):
        rep.layer("joint", 0)
    with pytest.raises(KeyError):
        rep["nope"]
    with pytest.raises(TypeError):
        rep["vision"] = rep["vision"]  # type: ignore[index]
    with pytest.raises(TypeError):
        rep.masks["image"] = rep.masks["image"]  # type: ignore[index]
    with pytest.raises(IndexError, match="out of range"):
        adapter.represent(images[0], texts[0], layers=[3])
    assert adapter.represent(images[0], texts[0], layers=[-3]).layers == (0, 2)


@pytest.mark.slow
def test_hooks_are_removed_after_return_and_after_error(family, load_tiny, images, texts, hook_count, monkeypatch):
    adapter = load_tiny(family)
    # transformers installs its own output-capturing hooks on some vision towers at their first
    # forward pass, for good: count after one.
    adapter.represent(images[0], texts[0])
    before = hook_count(adapter.model)
    adapter.represent_batch(images[:2], texts[:2], layers=[0, 1])
    assert hook_count(adapter.model) == before

    def broken(*args, **kwargs):
        raise RuntimeError("norm exploded")

    monkeypatch.setattr(adapter._final_norm, "forward", broken)
    with pytest.raises(RuntimeError, match="norm exploded"):
        adapter.represent(images[0], texts[0], layers=[0, 1])
    assert hook_count(adapter.model) == before
    # get_image_features is recorded through an instance attribute: gone again too.
    assert not any("get_image_features" in vars(module) for module in adapter.model.modules())


@pytest.mark.slow
def test_bad_inputs_raise_clear_errors(family, load_tiny, images) -> None:
    import numpy as np

    adapter = load_tiny(family)
    with pytest.raises(AdapterInputError, match="empty"):
        adapter.represent(images[0], "  ")
    with pytest.raises(AdapterInputError, match="image placeholder"):
        adapter.represent(images[0], f"look {adapter.image_token} here")
    with pytest.raises(AdapterInputError, match="not str"):
        adapter.represent("cat.jpg", "A cat.")
    with pytest.raises(AdapterInputError, match="empty"):
        adapter.represent(np.zeros((0, 10, 3), dtype=np.uint8), "A cat.")
    with pytest.raises(AdapterInputError, match="rejected the image"):
        adapter.represent(np.zeros((10, 10, 7), dtype=np.uint8), "A cat.")
    limit = adapter.max_images_per_sample  # None: several images (tests/test_video_adapters.py)
    if limit is not None:
        with pytest.raises(AdapterInputError, match=f"{limit + 1} images in one sample"):
            adapter.represent([images[0]] * (limit + 1), "A cat.")
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        adapter.represent_batch(images[:2], ["A cat."])
    assert adapter.represent_batch([], []) == []


def test_unknown_model_type_names_supported_families(tmp_path: Path) -> None:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="'gpt2' is not supported") as info:
        load_vlm(tmp_path)
    for family in supported_families():
        assert family in str(info.value)
    with pytest.raises(UnsupportedModelError, match="supported families: ") as info:
        adapter_class("nope")
    assert all(family in str(info.value) for family in supported_families())


def test_unknown_dtype_and_prompt(tiny_checkpoints) -> None:
    with pytest.raises(ValueError, match="unknown dtype"):
        load_vlm(tiny_checkpoints["llava"], dtype="float8")
    with pytest.raises(ValueError, match="prompt must be"):
        load_vlm(tiny_checkpoints["llava"], prompt="fancy")


@pytest.mark.slow
def test_tiny_checkpoint_is_marked_and_loads_with_transformers(family, tiny_checkpoints) -> None:
    from transformers import AutoProcessor

    path = tiny_checkpoints[family]
    config = json.loads((path / "config.json").read_text())
    assert config["mm_align_tiny"] == "RANDOM WEIGHTS - for smoke tests only"
    assert config["model_type"] == family
    cls = adapter_class(family).model_class
    model = cls.from_pretrained(path)
    assert model.config.text_config.hidden_size == 64
    processor = AutoProcessor.from_pretrained(path)
    inputs = processor(images=[Image.new("RGB", (60, 60))], text=[processor.image_token + "hi"], return_tensors="pt")
    with torch.inference_mode():
        assert model(**inputs).logits.shape[:2] == inputs["input_ids"].shape
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        load_vlm(path)


@pytest.mark.slow
def test_tiny_cli_prints_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mm_align.cli import main

    assert main(["tiny", "llava", str(tmp_path / "t"), "--seed", "1"]) == 0
    assert "RANDOM WEIGHTS" in capsys.readouterr().out
    assert (tmp_path / "t" / "model.safetensors").exists()


@pytest.mark.slow
def test_bfloat16(family, load_tiny, images, texts) -> None:
    bf16 = load_tiny(family, dtype="bfloat16")
    fp32 = load_tiny(family)
    reps = bf16.represent_batch(images[:2], texts[:2], layers=[1])
    for rep, image, text in zip(reps, images, texts):
        reference = fp32.represent(image, text, layers=[1])
        joint = hidden_states(bf16, rep.inputs["joint"])
        torch.testing.assert_close(rep["joint"], joint[-1][rep.masks["joint"]], rtol=2e-2, atol=2e-2)
        for stage in STAGES:
            assert rep[stage].dtype == torch.bfloat16
            assert rep[stage].shape == reference[stage].shape
            torch.testing.assert_close(rep[stage].float(), reference[stage], rtol=0.1, atol=0.1)


def test_probe_names_the_candidates_it_tried() -> None:
    from torch import nn

    from mm_align.adapters.modules import probe_module

    model = nn.Sequential(nn.Linear(2, 2))
    assert probe_module(model, ("model.visual", "0"), "first layer") is model[0]
    with pytest.raises(AttributeError, match=r"vision tower.*\['model.visual', 'visual'\]"):
        probe_module(model, ("model.visual", "visual"), "vision tower")


def test_adapters_never_ask_for_all_hidden_states() -> None:
    # Hooks capture only the requested layers; output_hidden_states is the tests' reference.
    import mm_align.adapters as package

    for source in Path(package.__file__).parent.glob("*.py"):
        assert "output_hidden_states=True" not in source.read_text(), source.name


@pytest.mark.slow
def test_untrained_llm_changes_the_llm_stages_only(family, load_tiny, images, texts) -> None:
    adapter = load_tiny(family)
    trained = adapter.represent(images[1], texts[1])
    with adapter.untrained_llm(seed=0) as untrained:
        assert untrained.vision_view == adapter.vision_view and untrained.prompt == adapter.prompt
        fresh = untrained.represent(images[1], texts[1])
    for stage in ("vision", "projector"):
        torch.testing.assert_close(fresh[stage], trained[stage], rtol=0, atol=0)
    assert not torch.allclose(fresh["joint"], trained["joint"])
    torch.testing.assert_close(adapter.represent(images[1], texts[1])["joint"], trained["joint"], rtol=0, atol=0)
