"""Family layouts that break the one-row-per-patch picture, checked against the vision tower
run by hand: LLaVA-NeXT's anyres tiles and image_newline rows, InternVL's CLS-less patches
before its pixel shuffle, LFM2-VL's padded NaFlex tiles."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import FLOAT32_RECOMPUTED

FP32 = {"rtol": FLOAT32_RECOMPUTED, "atol": FLOAT32_RECOMPUTED}


@pytest.mark.slow
def test_llava_next_vision_is_every_tile_and_projector_ends_grid_rows_with_newlines(load_tiny, images, texts):
    adapter = load_tiny("llava_next")
    model = adapter.model.model
    for rep in adapter.represent_batch(images, texts):
        inputs = rep.inputs["joint"]
        tiles = inputs["pixel_values"][0]  # base tile first, then the grid
        with torch.inference_mode():
            hidden = model.vision_tower(tiles, output_hidden_states=True).hidden_states[-2][:, 1:]
        torch.testing.assert_close(rep["vision"], hidden.reshape(-1, hidden.shape[-1]), **FP32)
        newline = model.image_newline.expand_as(rep["projector"])
        is_newline = torch.isclose(rep["projector"], newline, **FP32).all(-1)
        per_tile = hidden.shape[1]
        # No newline in the base tile; then one per un-padded grid row, closing it.
        assert not bool(is_newline[:per_tile].any()) and bool(is_newline[-1])
        grid = rep["projector"][per_tile:]
        assert int(is_newline.sum()) >= 2 and grid.shape[0] % int(is_newline.sum()) == 0


def test_internvl_patches_are_the_vit_rows_without_cls(load_tiny, images, texts):
    adapter = load_tiny("internvl")
    for rep in adapter.represent_batch(images, texts):
        with torch.inference_mode():
            out = adapter.model.model.vision_tower(rep.inputs["joint"]["pixel_values"]).last_hidden_state[:, 1:]
        torch.testing.assert_close(rep["vision"], out.reshape(-1, out.shape[-1]), **FP32)
        assert rep["vision"].shape[0] == 4 * rep["projector"].shape[0]  # 2 x 2 pixel shuffle


@pytest.mark.slow
def test_lfm2_vl_vision_drops_the_naflex_padding(load_tiny, images, texts):
    adapter = load_tiny("lfm2_vl")
    for rep in adapter.represent_batch(images, texts):
        inputs = rep.inputs["joint"]
        with torch.inference_mode():
            out = adapter.model.model.vision_tower(
                pixel_values=inputs["pixel_values"], spatial_shapes=inputs["spatial_shapes"],
                pixel_attention_mask=inputs["pixel_attention_mask"]).last_hidden_state
        real = [tile[: int(h * w)] for tile, (h, w) in zip(out, inputs["spatial_shapes"].tolist())]
        torch.testing.assert_close(rep["vision"], torch.cat(real), **FP32)
        assert rep["vision"].shape[0] == 4 * rep["projector"].shape[0]
