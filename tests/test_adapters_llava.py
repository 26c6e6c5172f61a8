"""LLaVA's vision stages against the vision tower and projector run by hand."""

from __future__ import annotations

import pytest
import torch

from mm_align.adapters.llava import LlavaAdapter

FP32 = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def adapter(load_tiny):
    return load_tiny("llava")


def _tower_layer(model, pixel_values: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = model.model.vision_tower(pixel_values, output_hidden_states=True)
    return out.hidden_states[model.config.vision_feature_layer][0]


def test_vision_is_the_selected_tower_layer_without_cls(adapter, images, texts) -> None:
    assert adapter.model.config.vision_feature_select_strategy == "default"
    for rep in adapter.represent_batch(images, texts):
        pixels = rep.inputs["joint"]["pixel_values"]
        layer = _tower_layer(adapter.model, pixels)
        torch.testing.assert_close(rep["vision"], layer[1:], **FP32)
        assert rep["vision"].shape == (16, adapter.model.config.vision_config.hidden_size)


def test_projector_is_the_models_image_features(adapter, images, texts) -> None:
    for rep in adapter.represent_batch(images, texts):
        with torch.inference_mode():
            features = adapter.model.get_image_features(pixel_values=rep.inputs["joint"]["pixel_values"])
            by_hand = adapter.model.model.multi_modal_projector(rep["vision"])
        torch.testing.assert_close(rep["projector"], features.pooler_output[0], **FP32)
        torch.testing.assert_close(rep["projector"], by_hand, **FP32)


@pytest.mark.slow
def test_full_strategy_keeps_cls(tiny_checkpoints, images, texts) -> None:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path = tiny_checkpoints["llava"]
    model = LlavaForConditionalGeneration.from_pretrained(path, vision_feature_select_strategy="full")
    processor = AutoProcessor.from_pretrained(path, vision_feature_select_strategy="full")
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        adapter = LlavaAdapter(model, processor)
    rep = adapter.represent(images[0], texts[0])
    layer = _tower_layer(model, rep.inputs["joint"]["pixel_values"])
    torch.testing.assert_close(rep["vision"], layer, **FP32)
    assert rep["vision"].shape[0] == rep["projector"].shape[0] == int(rep.masks["image"].sum()) == 17


def test_plain_prompt_is_bos_image_text(adapter, images, texts) -> None:
    rep = adapter.represent(images[0], texts[0])
    ids = rep.inputs["joint"]["input_ids"][0]
    tokenizer = adapter.processor.tokenizer
    assert ids[0] == tokenizer.bos_token_id and not rep.masks["joint"][0]
    assert rep.masks["image"][1:17].all() and not rep.masks["image"][17:].any()
    assert rep.masks["joint"][1:].all()
