"""Conventions that make numbers comparable across families: chat prompts tokenized as
transformers' ``apply_chat_template(tokenize=True)`` does, one position rule for every family,
Qwen3-VL's two readings of its deepstack layers. Checked on every family's tiny checkpoint."""

from __future__ import annotations

import pytest
import torch

from mm_align.adapters import adapter_class
from tests.helpers import families

FAMILIES = families()
CHAT_FAMILIES = [family for family in FAMILIES if "chat" in adapter_class(family).prompt_styles]
PAIRS = [(f, p) for f in FAMILIES for p in adapter_class(f).prompt_styles]
FP32 = {"rtol": 1e-5, "atol": 1e-5}


def _chat_ids(processor, content: list[dict]) -> torch.Tensor:
    messages = [{"role": "user", "content": content}]
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=False,
                                        return_tensors="pt")
    return out["input_ids"][0]


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_chat_prompts_are_the_processors_own_tokenization(family, load_tiny, images, texts) -> None:
    adapter = load_tiny(family, prompt="chat")
    processor, bos = adapter.processor, adapter.processor.tokenizer.bos_token_id
    for image, text in zip(images[:2], texts[:2]):
        rep = adapter.represent(image, text)
        joint = _chat_ids(processor, [{"type": "image", "image": image}, {"type": "text", "text": text}])
        alone = _chat_ids(processor, [{"type": "text", "text": text}])
        assert torch.equal(rep.inputs["joint"]["input_ids"][0].cpu(), joint)
        assert torch.equal(rep.inputs["text"]["input_ids"][0].cpu(), alone)
        for ids in (joint, alone):
            assert bos is None or int((ids == bos).sum()) <= 1, processor.tokenizer.convert_ids_to_tokens(ids[:3])


@pytest.mark.parametrize(("family", "prompt"), PAIRS, ids=lambda v: v)
def test_position_0_is_never_counted_unless_asked(family, prompt, load_tiny, images, texts) -> None:
    ruled = load_tiny(family, prompt=prompt)
    counted = load_tiny(family, prompt=prompt, count_first_position=True)
    assert ruled.options["count_first_position"] is False and counted.options["count_first_position"] is True
    for image, text in zip(images[:2], texts[:2]):
        new, old = ruled.represent(image, text), counted.represent(image, text)
        ids = {name: new.inputs[name]["input_ids"][0].cpu() for name in ("joint", "text")}
        assert all(torch.equal(ids[name], old.inputs[name]["input_ids"][0].cpu()) for name in ids)
        is_image = ids["joint"] == ruled.image_token_id
        # Counting position 0 (the previous behaviour): image = every image token.
        assert torch.equal(old.masks["image"].cpu(), is_image)
        for stage, name in (("image", "joint"), ("joint", "joint"), ("text", "text")):
            mask, before = new.masks[stage].cpu(), old.masks[stage].cpu()
            assert mask.shape == ids[name].shape and not bool(mask[0])
            assert torch.equal(mask[1:], before[1:])  # the rule changes position 0 only
            assert new[stage].shape[0] == int(mask.sum())
            # Rows in token order: the rule drops the first row where position 0 was counted.
            torch.testing.assert_close(new[stage], old[stage][1:] if bool(before[0]) else old[stage], **FP32)
        # The projector keeps one row per image token (PaliGemma: one more than its image stage).
        assert new["projector"].shape[0] == int(is_image.sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_position_0_is_not_counted_with_every_token_either(family, load_tiny, images, texts) -> None:
    rep = load_tiny(family, include_special=True).represent(images[1], texts[1])
    for stage in ("joint", "text"):
        assert not bool(rep.masks[stage][0]) and bool(rep.masks[stage][1:].all())
    old = load_tiny(family, include_special=True, count_first_position=True).represent(images[1], texts[1])
    assert bool(old.masks["joint"].all()) and bool(old.masks["text"].all())


def _deepstack_reference(adapter, rep) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
    """transformers' ``output_hidden_states`` of the joint input and the deepstack features its
    vision tower returns (``get_image_features``), one (image tokens x width) block per layer."""
    inputs = rep.inputs["joint"]
    with torch.inference_mode():
        hidden = adapter.model(**inputs, output_hidden_states=True).hidden_states
        features = adapter.model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    return tuple(h[0] for h in hidden), [torch.cat(list(block)) for block in features.deepstack_features]


def test_qwen3_vl_deepstack_layers_both_readings(load_tiny, images, texts) -> None:
    output = load_tiny("qwen3_vl")
    injected = load_tiny("qwen3_vl", deepstack="injected")
    assert output.deepstack == "output" and injected.options["deepstack"] == "injected"
    for image, text in zip(images[:2], texts[:2]):
        by_output = output.represent(image, text, layers=[0, 1])
        by_injected = injected.represent(image, text, layers=[0, 1])
        hidden, deepstack = _deepstack_reference(output, by_output)
        assert len(deepstack) >= 1  # the tiny tower has one deepstack merger: layer 1 differs
        is_image = by_output.inputs["joint"]["input_ids"][0] == output.image_token_id
        for layer in (0, 1, 2):
            plain = hidden[layer].clone()
            # By hand: the features the model adds after block layer-1, at the image tokens.
            if 1 <= layer <= len(deepstack) and layer < len(hidden) - 1:
                plain_injected = plain.clone()
                plain_injected[is_image] += deepstack[layer - 1]
            else:
                plain_injected = plain
            for rep, states in ((by_output, plain), (by_injected, plain_injected)):
                torch.testing.assert_close(rep.layer("image", layer), states[rep.masks["image"]], **FP32)
                torch.testing.assert_close(rep.layer("joint", layer), states[rep.masks["joint"]], **FP32)
        assert not torch.allclose(by_output.layer("image", 1), by_injected.layer("image", 1), **FP32)
        torch.testing.assert_close(by_output.layer("text", 1), by_injected.layer("text", 1), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_deepstack_injected_is_refused_where_nothing_is_injected(family, tiny_checkpoints) -> None:
    from mm_align import load_vlm

    with pytest.raises(ValueError, match="adds no deepstack features"):
        load_vlm(tiny_checkpoints[family], deepstack="injected")
