"""LLaVA-OneVision (``model_type`` ``"llava_onevision"``, e.g.
llava-hf/llava-onevision-qwen2-0.5b-ov-hf): SigLIP ViT over "anyres" tiles -> MLP projector
-> Qwen2 LLM.

Layout as in LLaVA-NeXT (:mod:`~mm_align.adapters.llava_next`): ``"vision"`` = every tile's
patches at the projector's input; ``"projector"`` = what ``get_image_features`` returns, one
row per image token: the base tile, then the un-padded grid (bilinearly shrunk when it exceeds
``anyres_max_9``'s budget) with an ``image_newline`` row ending each grid row (a single-tile
image: its rows and one ``image_newline`` row); ``"image"`` = the LLM states at all those
tokens.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE, llava_tokenizer, tiny_llama_text
from mm_align.adapters.tiny.vision import CLIP_IMAGE_SIZE, TINY_PINPOINTS, tiny_siglip_vision
from mm_align.data.video import FrameSampling

__all__ = ["LlavaOnevisionAdapter"]


@register("llava_onevision")
class LlavaOnevisionAdapter(GenericVLMAdapter):
    """LLaVA-OneVision adapter; see the module doc for the anyres layout."""

    model_class = LlavaOnevisionForConditionalGeneration
    example_id = "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    # The LLaVA-OneVision paper's video setting: 32 frames evenly spread.
    frame_sampling = FrameSampling(num_frames=32)

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP (2 layers, width 32, 56 px tiles of 16 patches) + Llama-style LLM (2 layers,
        width 64), grids up to 2 x 2 tiles. Randomly initialised."""
        tokenizer, ids = llava_tokenizer()
        config = LlavaOnevisionConfig(
            vision_config=tiny_siglip_vision(),
            text_config=tiny_llama_text(len(tokenizer), ids),
            image_token_index=ids["<image>"],
            video_token_index=ids["<video>"],
            image_grid_pinpoints=TINY_PINPOINTS,
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
        )
        size = {"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE}
        processor = LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=TINY_PINPOINTS),
            video_processor=LlavaOnevisionVideoProcessor(size=size),
            tokenizer=tokenizer,
            num_image_tokens=(CLIP_IMAGE_SIZE // 14) ** 2,
            vision_feature_select_strategy="full",
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
        return build_and_save(LlavaOnevisionForConditionalGeneration, config, processor, directory, seed)
