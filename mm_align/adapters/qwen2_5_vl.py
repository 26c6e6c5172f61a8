"""Qwen2.5-VL (``model_type`` ``"qwen2_5_vl"``): windowed ViT -> patch merger (MLP over
2 x 2 patches) -> Qwen2.5 LLM with multimodal RoPE.

Stages: ``"vision"`` = the tokens entering the patch merger (``visual.merger`` input; rows =
``spatial_merge_size**2`` x merged rows; ``vision_view="merged"``: the merger MLP's input, one
row per image token), ``"projector"`` = what ``get_image_features`` returns: the merger output
after the model undoes its window reordering (one row per image token, in raster order). The
``"vision"`` rows stay in the window order the ViT works in: eRank is invariant to row
permutations, and every merge group of rows stays together. Plain prompt:
``<|vision_start|>``, the image tokens, ``<|vision_end|>``, then the text (no BOS).
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
)

from mm_align.adapters.qwen_style import QwenVideoAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.qwen import qwen2_processor, qwen_text_config, qwen_token_ids, qwen_tokenizer

__all__ = ["Qwen2_5_VLAdapter"]


@register("qwen2_5_vl")
class Qwen2_5_VLAdapter(QwenVideoAdapter):
    """Qwen2.5-VL adapter; see :mod:`~mm_align.adapters.qwen_style` (video
    clips and several images: :class:`~mm_align.adapters.qwen_style.QwenVideoAdapter`)."""

    model_class = Qwen2_5_VLForConditionalGeneration
    example_id = "Qwen/Qwen2.5-VL-3B-Instruct"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 blocks, width 32, windows of 2 x 2 merged tokens so that the window
        reordering is exercised) + Qwen2.5 LLM (2 layers, width 64); images resized to at most
        112 x 112 px, i.e. at most 64 patches and 16 image tokens. Randomly initialised."""
        tokenizer, ids = qwen_tokenizer()
        patch_size, merge_size, temporal_patch_size = 14, 2, 2
        config = Qwen2_5_VLConfig(
            text_config=qwen_text_config(len(tokenizer), ids),
            vision_config={
                "depth": 2,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_heads": 2,
                "out_hidden_size": 64,
                "patch_size": patch_size,
                "spatial_merge_size": merge_size,
                "temporal_patch_size": temporal_patch_size,
                "window_size": 56,
                "fullatt_block_indexes": [1],
            },
            **qwen_token_ids(ids),
        )
        processor = qwen2_processor(Qwen2_5_VLProcessor, tokenizer)
        return build_and_save(Qwen2_5_VLForConditionalGeneration, config, processor, directory, seed)
