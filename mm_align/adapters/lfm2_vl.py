"""LFM2-VL (``model_type`` ``"lfm2_vl"``, e.g. LiquidAI/LFM2-VL-450M): SigLIP2 NaFlex over
image tiles at their own aspect ratio -> projector (pixel unshuffle of 2 x 2 patches, MLP) ->
LFM2 (gated short convolutions and attention).

Layout: a large image becomes a grid of tiles, each written as ``<|img_row_R_col_C|>`` and its
``<image>`` tokens, plus a thumbnail (``<|img_thumbnail|>``), all between ``<|image_start|>``
and ``<|image_end|>``; a small image is one tile. The ``"image"`` stage is the ``<image>``
tokens only (one per projector row, tile after tile); the markers are neither ``image`` nor
``text``.

Stages: ``"vision"`` = the SigLIP2 output of every tile without its padding patches (one row
per real patch; the ``pixel_attention_mask`` padding that NaFlex adds to reach a common length
is cut off with ``spatial_shapes``). The model un-shuffles every tile's patches side by side in
one padded grid before the projector's linear layers, so only the ``"patches"`` view exists.
``"projector"`` = what ``get_image_features`` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    Lfm2VlConfig,
    Lfm2VlForConditionalGeneration,
    Lfm2VlImageProcessor,
    Lfm2VlProcessor,
)

from mm_align.adapters.encoding import Encoded
from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.modules import probe_module
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE
from mm_align.capture import Tap, output_of

__all__ = ["Lfm2VlAdapter"]

_TOKENS = ("<|pad|>", "<|startoftext|>", "<|im_end|>", "<image>", "<|image_start|>", "<|image_end|>",
           "<|img_thumbnail|>", *(f"<|img_row_{i}_col_{j}|>" for i in range(1, 5) for j in range(1, 5)))


@register("lfm2_vl")
class Lfm2VlAdapter(GenericVLMAdapter):
    """LFM2-VL adapter; see the module doc for tiles and NaFlex padding."""

    model_class = Lfm2VlForConditionalGeneration
    example_id = "LiquidAI/LFM2-VL-1.6B"
    vision_tap = "vision_tower output, NaFlex padding cut"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    vision_views = ("patches",)

    def _patches_tap(self) -> Tap:
        return output_of(probe_module(self.model, ("model.vision_tower", "vision_tower"), "vision tower"))

    def _cut_vision(self, found: Sequence[torch.Tensor], samples: Sequence[Encoded]) -> list[torch.Tensor]:
        (tiles,) = found  # (tiles of the batch, longest tile's patches, width)
        shapes = torch.cat([sample.inputs["spatial_shapes"] for sample in samples])
        real = [tile[: int(height * width)] for tile, (height, width) in zip(tiles, shapes.tolist())]
        per_sample = [int(sample.inputs["spatial_shapes"].shape[0]) for sample in samples]
        return [torch.cat(rows) for rows in _chunks(real, per_sample)]

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP2 (2 layers, width 32, 8 px patches, 32 px tiles, <= 16 image tokens per tile)
        + LFM2 (a convolution and an attention layer, width 64). Randomly initialised."""
        tokenizer = build_tiny_tokenizer(_TOKENS, bos_token="<|startoftext|>", eos_token="<|im_end|>",
                                         pad_token="<|pad|>")
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _TOKENS}
        config = Lfm2VlConfig(
            vision_config={"model_type": "siglip2_vision_model", "hidden_size": 32, "intermediate_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8, "num_patches": 64},
            text_config={"model_type": "lfm2", "vocab_size": len(tokenizer), "hidden_size": 64,
                         "intermediate_size": 128, "block_auto_adjust_ff_dim": False, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "layer_types": ["conv", "full_attention"],
                         "pad_token_id": ids["<|pad|>"], "bos_token_id": ids["<|startoftext|>"],
                         "eos_token_id": ids["<|im_end|>"]},
            image_token_id=ids["<image>"],
            projector_hidden_size=64,
            downsample_factor=2,
        )
        image_processor = Lfm2VlImageProcessor(
            encoder_patch_size=8, tile_size=32, min_tiles=2, max_tiles=4, min_image_tokens=4, max_image_tokens=16,
            size={"height": 32, "width": 32}, downsample_factor=2,
        )
        processor = Lfm2VlProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    chat_template=LLAVA_CHAT_TEMPLATE)
        return build_and_save(Lfm2VlForConditionalGeneration, config, processor, directory, seed)


def _chunks(items: list[torch.Tensor], sizes: list[int]) -> list[list[torch.Tensor]]:
    """``items`` cut into consecutive runs of ``sizes``."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [items[start : start + size] for start, size in zip(starts, sizes)]
