"""Qwen2.5-VL's vision stages against the vision tower and merger run by hand."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers.vision_utils import get_vision_window_index

from mm_align.adapters import AdapterInputError

FP32 = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def adapter(load_tiny):
    return load_tiny("qwen2_5_vl")


@pytest.fixture(scope="module")
def reps(adapter, images, texts):
    return adapter.represent_batch(images, texts)


def test_images_of_different_shapes_in_one_batch(reps) -> None:
    grids = {tuple(rep.inputs["joint"]["image_grid_thw"][0].tolist()) for rep in reps}
    assert len(grids) > 1


def test_vision_is_the_merger_input(adapter, reps) -> None:
    visual = adapter.model.model.visual
    config = adapter.model.config.vision_config
    unit = config.spatial_merge_size**2
    for rep in reps:
        pixels, grid = rep.inputs["joint"]["pixel_values"], rep.inputs["joint"]["image_grid_thw"]
        with torch.inference_mode():
            tower = visual(pixels, grid_thw=grid)
            merged = visual.merger(rep["vision"])
        # The tower's last block output is what the merger receives.
        torch.testing.assert_close(rep["vision"], tower.last_hidden_state, **FP32)
        assert rep["vision"].shape[0] == unit * rep["projector"].shape[0] == int(grid.prod())
        # Merging the vision rows and undoing the window order gives the projector rows.
        window_index, _ = get_vision_window_index(
            grid, config.spatial_merge_size, config.window_size, config.patch_size
        )
        torch.testing.assert_close(merged[torch.argsort(window_index)], rep["projector"], **FP32)
    # The tiny config has several windows per image, so the reordering is really exercised.
    first_grid = reps[0].inputs["joint"]["image_grid_thw"]
    window_index, _ = get_vision_window_index(first_grid, config.spatial_merge_size, config.window_size, config.patch_size)
    assert not torch.equal(window_index, torch.arange(len(window_index)))


def test_projector_is_the_models_image_features(adapter, reps) -> None:
    for rep in reps:
        inputs = rep.inputs["joint"]
        with torch.inference_mode():
            features = adapter.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        torch.testing.assert_close(rep["projector"], features.pooler_output[0], **FP32)


def test_plain_prompt_wraps_the_image_in_vision_markers(adapter, reps) -> None:
    config = adapter.model.config
    for rep in reps:
        ids = rep.inputs["joint"]["input_ids"][0]
        n = int(rep.masks["image"].sum())
        assert ids[0] == config.vision_start_token_id and ids[n + 1] == config.vision_end_token_id
        assert rep.masks["image"][1 : n + 1].all()
        assert not rep.masks["joint"][0] and not rep.masks["joint"][n + 1]
        assert rep.masks["joint"][n + 2 :].all()


def test_extreme_aspect_ratio_is_rejected(adapter) -> None:
    with pytest.raises(AdapterInputError, match="aspect ratio"):
        adapter.represent(Image.new("RGB", (1000, 4)), "A very thin line.")


@pytest.mark.slow
def test_merged_view_is_what_the_merger_mlp_sees(adapter, load_tiny, reps, images, texts) -> None:
    merged = load_tiny("qwen2_5_vl", vision_view="merged")
    assert merged.vision_view == "merged" and adapter.vision_view == "patches"
    merger = adapter.model.model.visual.merger
    for rep, other in zip(reps, merged.represent_batch(images, texts)):
        with torch.inference_mode():
            by_hand = merger.ln_q(rep["vision"]).view(-1, 4 * rep["vision"].shape[1])
        assert other["vision"].shape == (rep["projector"].shape[0], 4 * rep["vision"].shape[1])
        torch.testing.assert_close(other["vision"], by_hand, **FP32)
