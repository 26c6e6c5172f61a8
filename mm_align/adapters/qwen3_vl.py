"""Qwen3-VL (``model_type`` ``"qwen3_vl"``, e.g. Qwen/Qwen3-VL-2B-Instruct): ViT over 16 px
patches -> patch merger (MLP over 2 x 2 patches) -> Qwen3 LLM with interleaved M-RoPE.

Stages and views as for every Qwen-style family (:mod:`~mm_align.adapters.qwen_style`): the
main merger's input and what ``get_image_features`` returns. The "DeepStack" mergers that add
features of intermediate ViT blocks to the first LLM layers' outputs are not a stage of their
own: their effect is in the LLM states (``image``, ``joint``), which is what the paper measures.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from mm_align.adapters.qwen_style import (
    QwenStyleAdapter,
    qwen_chat_template,
    qwen_text_config,
    qwen_token_ids,
    qwen_tokenizer,
)
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save

__all__ = ["Qwen3VLAdapter", "qwen3_processor", "qwen3_vision_config"]


def qwen3_vision_config() -> dict:
    """A 2-block, width-32 Qwen3 ViT over 16 px patches, DeepStack from block 0."""
    return {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
            "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}


def qwen3_processor(tokenizer) -> Qwen3VLProcessor:
    """Images of at most 128 x 128 px: at most 64 patches, 16 image tokens."""
    sizes = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=64 * 64, max_pixels=128 * 128, **sizes),
        video_processor=Qwen3VLVideoProcessor(**sizes),
        tokenizer=tokenizer,
        chat_template=qwen_chat_template("<|vision_start|><|image_pad|><|vision_end|>"),
    )


@register("qwen3_vl")
class Qwen3VLAdapter(QwenStyleAdapter):
    """Qwen3-VL adapter; see :mod:`~mm_align.adapters.qwen_style`."""

    model_class = Qwen3VLForConditionalGeneration
    example_id = "Qwen/Qwen3-VL-4B-Instruct"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 blocks, width 32) + Qwen3 LLM (2 layers, width 64). Randomly initialised."""
        tokenizer, ids = qwen_tokenizer()
        config = Qwen3VLConfig(
            text_config=qwen_text_config(len(tokenizer), ids, rope_parameters={
                "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
            vision_config=qwen3_vision_config(),
            **qwen_token_ids(ids),
        )
        return build_and_save(Qwen3VLForConditionalGeneration, config, qwen3_processor(tokenizer), directory, seed)
