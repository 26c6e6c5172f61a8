"""Command A Vision (``model_type`` ``"cohere2_vision"``, e.g.
CohereLabs/command-a-vision-07-2025): SigLIP over image tiles -> projector (pixel shuffle of
2 x 2 patches, SwiGLU MLP) -> Cohere2.

Layout: the processor replaces the image by ``<|START_OF_IMG|>``, then per tile its
``<|IMG_PATCH|>`` tokens followed by ``<|IMG_LINE_BREAK|>``, then ``<|END_OF_IMG|>``. The
``"image"`` stage is the patch tokens only (one per projector row, tile after tile); the line
breaks and markers are neither ``image`` nor ``text``.

Stages: ``"vision"`` = every tile's SigLIP rows at the projector's input (``"patches"``) or
the pixel-shuffled rows its first linear layer sees (``"merged"``); ``"projector"`` = what
``get_image_features`` returns.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Cohere2VisionConfig,
    Cohere2VisionForConditionalGeneration,
    Cohere2VisionImageProcessor,
    Cohere2VisionProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.cohere import cohere_parts
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE
from mm_align.adapters.tiny.vision import tiny_siglip_vision

__all__ = ["Cohere2VisionAdapter"]

_MARKERS = {"boi_token": "<|START_OF_IMG|>", "eoi_token": "<|END_OF_IMG|>", "image_token": "<|IMG_PATCH|>",
            "img_line_break_token": "<|IMG_LINE_BREAK|>"}


@register("cohere2_vision")
class Cohere2VisionAdapter(GenericVLMAdapter):
    """Command A Vision adapter; see the module doc for tiles and markers."""

    model_class = Cohere2VisionForConditionalGeneration
    example_id = "CohereLabs/command-a-vision-07-2025"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP (2 layers, width 32, 56 px tiles of 16 patches -> 4 tokens), up to 2 tiles
        plus a thumbnail, + Cohere2 (2 layers, width 64). Randomly initialised."""
        tokenizer, ids, text = cohere_parts(*_MARKERS.values(), **_MARKERS)
        config = Cohere2VisionConfig(
            vision_config=tiny_siglip_vision(),
            text_config=text,
            downsample_factor=2,
            image_token_id=ids["<|IMG_PATCH|>"],
            alignment_intermediate_size=64,
        )
        # The processor reads the image processor's patch_size as image tokens per tile side.
        processor = Cohere2VisionProcessor(
            image_processor=Cohere2VisionImageProcessor(size={"height": 56, "width": 56}, patch_size=2,
                                                        max_patches=2),
            tokenizer=tokenizer,
            chat_template=LLAVA_CHAT_TEMPLATE.replace("<image>", "<|IMG_PATCH|>"),
        )
        return build_and_save(Cohere2VisionForConditionalGeneration, config, processor, directory, seed)
