"""Qwen2.5-VL (``model_type`` ``"qwen2_5_vl"``): windowed ViT -> patch merger (MLP over
2 x 2 patches) -> Qwen2.5 LLM with multimodal RoPE.

Stages: ``"vision"`` = the tokens entering the patch merger (``visual.merger`` input; rows =
``spatial_merge_size**2`` x merged rows), ``"projector"`` = the merger output after the model
undoes its window reordering (one row per image token, in raster order). The ``"vision"`` rows
stay in the window order the ViT works in: eRank is invariant to row permutations, and every
merge group of rows stays together. Plain prompt: ``<|vision_start|>``, the image tokens,
``<|vision_end|>``, then the text (no BOS: Qwen has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from mm_align.adapters.base import VLMAdapter
from mm_align.adapters.modules import probe_module
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_tiny_tokenizer, save_tiny
from mm_align.capture import Captured, Tap, input_of, output_of

__all__ = ["Qwen2_5_VLAdapter"]

_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The Qwen2.5-VL chat template, without video and tool branches.
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _merged_features(output: Any) -> torch.Tensor:
    # transformers 5.x returns the merged, un-windowed features as pooler_output; 4.5x returns
    # them as a plain tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@register("qwen2_5_vl")
class Qwen2_5_VLAdapter(VLMAdapter):
    """Qwen2.5-VL adapter; see :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks."""

    model_class = Qwen2_5_VLForConditionalGeneration
    projector_paths = ("model.visual.merger", "visual.merger")

    def __init__(self, model: PreTrainedModel, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self._visual = probe_module(model, ("model.visual", "visual"), "vision tower")
        self._merge_unit = int(model.config.vision_config.spatial_merge_size) ** 2
        tokenizer = processor.tokenizer
        self._vision_start = tokenizer.convert_ids_to_tokens(model.config.vision_start_token_id)
        self._vision_end = tokenizer.convert_ids_to_tokens(model.config.vision_end_token_id)

    def _image_prefix(self) -> str:
        return f"{self._vision_start}{self.image_token}{self._vision_end}"

    def _vision_taps(self) -> dict[str, Tap]:
        return {
            # Rows in the ViT's window order: a row permutation leaves eRank unchanged.
            "vision": input_of(self.projector),
            # Read at the tower's output, not the merger's: only there is the window order undone.
            "projector": output_of(self._visual, pick=_merged_features),
        }

    def _split_vision(
        self, got: Captured, batch: Mapping[str, torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # All images' patches are flattened into one sequence; the window reordering permutes
        # rows within an image only, so per-image row counts cut it cleanly.
        patches = batch["image_grid_thw"].prod(-1)
        vision = got["vision"].split(patches.tolist())
        projector = got["projector"].split((patches // self._merge_unit).tolist())
        return list(zip(vision, projector))

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 blocks, width 32, windows of 2 x 2 merged tokens so that the window
        reordering is exercised) + Qwen2.5 LLM (2 layers, width 64); images resized to at most
        112 x 112 px, i.e. at most 64 patches and 16 image tokens. Randomly initialised."""
        tokenizer = build_tiny_tokenizer(_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SPECIAL_TOKENS}
        patch_size, merge_size, temporal_patch_size = 14, 2, 2
        config = Qwen2_5_VLConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "max_position_embeddings": 1024,
                # head_dim 16: the three M-RoPE sections (t, h, w) split its 8 frequencies.
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
                "bos_token_id": None,
                "eos_token_id": ids["<|im_end|>"],
                "pad_token_id": ids["<|endoftext|>"],
            },
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
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
        )
        sizes = {"patch_size": patch_size, "merge_size": merge_size, "temporal_patch_size": temporal_patch_size}
        processor = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, **sizes),
            # transformers 5.x needs a video processor in the saved processor even for images.
            video_processor=Qwen2VLVideoProcessor(**sizes),
            tokenizer=tokenizer,
            chat_template=_CHAT_TEMPLATE,
        )
        torch.manual_seed(seed)
        return save_tiny(Qwen2_5_VLForConditionalGeneration(config), processor, directory)
