"""Qwen3-VL (``model_type`` ``"qwen3_vl"``, e.g. Qwen/Qwen3-VL-2B-Instruct): ViT over 16 px
patches -> patch merger (MLP over 2 x 2 patches) -> Qwen3 LLM with interleaved M-RoPE.

Stages and views as for every Qwen-style family (:mod:`~mm_align.adapters.qwen_style`): the
main merger's input and what ``get_image_features`` returns.

DeepStack: the vision tower also returns features of intermediate ViT blocks
(``deepstack_visual_indexes``, one merger each); the LLM adds them to the image tokens' states
after its decoder blocks 0..k-1 (``_deepstack_process``). They are not a stage of their own:
their effect is in the LLM stages. What the captured layers 1..k hold at the image tokens is
the ``deepstack`` option: ``"output"`` (default) the block's output before the addition,
exactly what transformers' ``output_hidden_states`` gives; ``"injected"`` the state after it,
which is what the next block receives. Layer 0, the layers after k, the last layer and the
text tokens read the same either way (see docs/CHOICES.md).
"""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from mm_align.adapters.qwen_style import QwenVideoAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.qwen import (
    qwen3_processor,
    qwen3_vision_config,
    qwen_text_config,
    qwen_token_ids,
    qwen_tokenizer,
)

__all__ = ["Qwen3VLAdapter"]


@register("qwen3_vl")
class Qwen3VLAdapter(QwenVideoAdapter):
    """Qwen3-VL adapter; see :mod:`~mm_align.adapters.qwen_style` (video
    clips and several images: :class:`~mm_align.adapters.qwen_style.QwenVideoAdapter`)."""

    model_class = Qwen3VLForConditionalGeneration
    deepstack_readings = ("output", "injected")
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
