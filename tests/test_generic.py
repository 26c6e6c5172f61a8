"""The generic adapter's vision stages for every family, against transformers' own
``get_image_features`` run on each sample alone (not the adapter's batch), and its options."""

from __future__ import annotations

import pytest
import torch

from mm_align.adapters import adapter_class
from mm_align.adapters.features import feature_rows, features_owner
from mm_align.adapters.generic import GenericVLMAdapter
from tests.helpers import FLOAT32_RECOMPUTED, families

FP32 = {"rtol": FLOAT32_RECOMPUTED, "atol": FLOAT32_RECOMPUTED}
PER_TOKEN = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
# Families on the generic adapter (get_image_features); a family of its own (MiniGPT-v2) is
# proven against its official computation in its own test file.
GENERIC = [f for f in families() if issubclass(adapter_class(f), GenericVLMAdapter)]
VIEWS = [(family, view) for family in GENERIC for view in adapter_class(family).vision_views]


def _pixels(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The non-token inputs of one sample: what get_image_features takes."""
    return {key: value for key, value in inputs.items() if key not in PER_TOKEN}


def _alone(adapter, inputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """transformers' get_image_features on one sample, and what its vision tap's module (or
    patches method) received meanwhile, read by a hook set up here in the test."""
    received: list[torch.Tensor] = []
    tap = adapter._merged_tap() if adapter.vision_view == "merged" else adapter._patches_tap()
    owner = features_owner(adapter.model)
    if adapter.vision_view == "patches" and adapter.patches_method:
        method = getattr(owner, adapter.patches_method)
        handle = None

        def record(*args, **kwargs):
            received.append(args[0].detach().clone())
            return method(*args, **kwargs)

        setattr(owner, adapter.patches_method, record)
    elif tap.at == "input":
        handle = tap.module.register_forward_pre_hook(
            lambda module, args, kwargs: received.append((tap.pick or (lambda a, k: a[0]))(args, kwargs)),
            with_kwargs=True)
    else:
        handle = tap.module.register_forward_hook(
            lambda module, args, out: received.append(getattr(out, "last_hidden_state", out)))
    try:
        with torch.inference_mode():
            features = owner.get_image_features(**_pixels(inputs))
    finally:
        if handle is None:
            delattr(owner, adapter.patches_method)
        else:
            handle.remove()
    return feature_rows(features), received


@pytest.mark.slow
@pytest.mark.parametrize(("family", "view"), VIEWS, ids=lambda x: x)
def test_vision_and_projector_equal_get_image_features_on_each_sample_alone(family, view, load_tiny, images,
                                                                              texts) -> None:
    adapter = load_tiny(family, vision_view=view)
    assert adapter.vision_view == view
    for rep in adapter.represent_batch(images, texts):
        projector, received = _alone(adapter, rep.inputs["joint"])
        torch.testing.assert_close(rep["projector"], projector, **FP32)
        whole = torch.cat([tensor.reshape(-1, tensor.shape[-1]) for tensor in received])
        if rep["vision"].shape == whole.shape:
            torch.testing.assert_close(rep["vision"], whole, **FP32)
        else:  # padding the model adds and drops (NaFlex tiles): the rows are a subset, in order
            assert family == "lfm2_vl", (family, rep["vision"].shape, whole.shape)
            kept = torch.isclose(whole[:, None], rep["vision"][None], **FP32).all(-1).any(0)
            assert bool(kept.all())
        assert rep["projector"].shape[0] == int((rep.inputs["joint"]["input_ids"][0] == adapter.image_token_id).sum())


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in families() if "merged" in adapter_class(f).vision_views])
def test_merged_view_regroups_the_same_patches(family, load_tiny, images, texts) -> None:
    # A merge groups patch rows side by side: same values, fewer and wider rows (none when the
    # connector does not group, as in LLaVA).
    patches = load_tiny(family).represent_batch(images[:2], texts[:2])
    merged = load_tiny(family, vision_view="merged").represent_batch(images[:2], texts[:2])
    for p, m in zip(patches, merged):
        group = m["vision"].shape[1] // p["vision"].shape[1]
        assert m["vision"].shape[0] * group == p["vision"].shape[0]
        for stage in ("projector", "image", "text", "joint"):
            torch.testing.assert_close(p[stage], m[stage], rtol=0, atol=0)


def test_unknown_or_unoffered_vision_view_is_refused(tiny_checkpoints) -> None:
    from mm_align import load_vlm

    with pytest.raises(ValueError, match="vision_view 'pooled' is not offered"):
        load_vlm(tiny_checkpoints["llava"], vision_view="pooled")
    patches_only = next((f for f in families() if adapter_class(f).vision_views == ("patches",)), None)
    if patches_only:
        with pytest.raises(ValueError, match="offers \\['patches'\\]"):
            load_vlm(tiny_checkpoints[patches_only], vision_view="merged")


def test_default_vision_view_is_patches(family) -> None:
    assert adapter_class(family).vision_views[0] == "patches"
