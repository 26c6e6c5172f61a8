"""Qwen3.5 (``model_type`` ``"qwen3_5"``): the Qwen3-VL vision tower and merger in front of a
hybrid LLM (Gated DeltaNet linear-attention layers interleaved with full attention).

Stages and views as for every Qwen-style family (:mod:`~mm_align.adapters.qwen_style`). The
linear-attention layers are causal too, so the image tokens are still a causal prefix.
"""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

from mm_align.adapters.qwen_style import QwenStyleAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.qwen import (
    qwen3_processor,
    qwen3_vision_config,
    qwen_text_config,
    qwen_token_ids,
    qwen_tokenizer,
)

__all__ = ["Qwen3_5Adapter"]


@register("qwen3_5")
class Qwen3_5Adapter(QwenStyleAdapter):
    """Qwen3.5 adapter; see :mod:`~mm_align.adapters.qwen_style`."""

    model_class = Qwen3_5ForConditionalGeneration
    example_id = "Qwen/Qwen3.5-27B"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Qwen3 ViT (2 blocks, width 32) + hybrid LLM (one linear-attention layer, one full
        attention layer, width 64). Randomly initialised."""
        tokenizer, ids = qwen_tokenizer()
        vision = {key: value for key, value in qwen3_vision_config().items() if key != "deepstack_visual_indexes"}
        text = qwen_text_config(
            len(tokenizer), ids,
            layer_types=["linear_attention", "full_attention"],
            linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                             "mrope_interleaved": True, "partial_rotary_factor": 1.0},
        )
        config = Qwen3_5Config(text_config=text, vision_config=vision, **qwen_token_ids(ids))
        return build_and_save(Qwen3_5ForConditionalGeneration, config, qwen3_processor(tokenizer), directory, seed)
