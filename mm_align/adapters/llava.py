"""LLaVA (``model_type`` ``"llava"``, e.g. llava-hf/llava-1.5-7b-hf): CLIP ViT -> MLP
projector -> Llama/Vicuna.

Stages (:mod:`~mm_align.adapters.generic`): ``"vision"`` = the input of
``multi_modal_projector``, i.e. the vision tower's hidden state at
``config.vision_feature_layer`` with the CLS token dropped (strategy ``"default"``) or kept
(``"full"``), exactly what the model projects (the connector does not group patches, so both
vision views are these rows); ``"projector"`` = the projector output, one row per image token.
Plain prompt: ``<s>``, the image tokens, then the text.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    CLIPImageProcessor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE, llava_tokenizer, tiny_llama_text
from mm_align.adapters.tiny.vision import CLIP_IMAGE_SIZE, CLIP_PATCH_SIZE, tiny_clip_vision

__all__ = ["LlavaAdapter"]

@register("llava")
class LlavaAdapter(GenericVLMAdapter):
    """LLaVA adapter; see :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks."""

    model_class = LlavaForConditionalGeneration
    example_id = "llava-hf/llava-1.5-7b-hf"
    # The projector's input is the selected layer with the CLS rule already applied: reading
    # it there is more faithful than re-deriving the selection from the config.
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    # Several images: one image-token block each, in order (every image is resized to the same
    # tile, so each adds the same number of tokens).
    max_images_per_sample = None

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """CLIP vision (2 layers, width 32, 56 px, patch 14: 16 image tokens) + Llama (2 layers,
        width 64), randomly initialised with ``seed``."""
        tokenizer, ids = llava_tokenizer()
        config = LlavaConfig(
            vision_config=tiny_clip_vision(),
            text_config=tiny_llama_text(len(tokenizer), ids),
            image_token_id=ids["<image>"],
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": CLIP_IMAGE_SIZE}, crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE}
        )
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=CLIP_PATCH_SIZE,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,  # CLIP's CLS, dropped again by "default"
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
        return build_and_save(LlavaForConditionalGeneration, config, processor, directory, seed)
