"""Qwen2-VL (``model_type`` ``"qwen2_vl"``, e.g. Qwen/Qwen2-VL-2B-Instruct): ViT with 2-D
RoPE -> patch merger (MLP over 2 x 2 patches) -> Qwen2 LLM with multimodal RoPE.

Stages and views as for every Qwen-style family (:mod:`~mm_align.adapters.qwen_style`); no
window reordering, so the vision rows are in raster order of merge groups.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)

from mm_align.adapters.qwen_style import QwenVideoAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.qwen import qwen2_processor, qwen_text_config, qwen_token_ids, qwen_tokenizer

__all__ = ["Qwen2VLAdapter"]


@register("qwen2_vl")
class Qwen2VLAdapter(QwenVideoAdapter):
    """Qwen2-VL adapter; see :mod:`~mm_align.adapters.qwen_style` (video
    clips and several images: :class:`~mm_align.adapters.qwen_style.QwenVideoAdapter`)."""

    model_class = Qwen2VLForConditionalGeneration
    example_id = "Qwen/Qwen2-VL-2B-Instruct"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 blocks, width 32, 14 px patches) + Qwen2 LLM (2 layers, width 64); images of
        at most 112 x 112 px (<= 16 image tokens). Randomly initialised."""
        tokenizer, ids = qwen_tokenizer()
        config = Qwen2VLConfig(
            text_config=qwen_text_config(len(tokenizer), ids),
            vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2, "num_heads": 2,
                           "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
            **qwen_token_ids(ids),
        )
        processor = qwen2_processor(Qwen2VLProcessor, tokenizer)
        return build_and_save(Qwen2VLForConditionalGeneration, config, processor, directory, seed)
