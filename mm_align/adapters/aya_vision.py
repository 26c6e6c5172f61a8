"""Aya Vision (``model_type`` ``"aya_vision"``, e.g. CohereLabs/aya-vision-8b): SigLIP over
image tiles -> projector (pixel shuffle of 2 x 2 patches, LayerNorm, SwiGLU MLP) -> Cohere2.

Layout: the processor replaces ``<image>`` by ``<|START_OF_IMG|>``, then per tile the plain
text ``TILE_k`` and that tile's ``<|IMG_PATCH|>`` tokens, then ``TILE_GLOBAL`` and the global
tile's patch tokens, and ``<|END_OF_IMG|>``. The ``"image"`` stage is the ``<|IMG_PATCH|>``
tokens only (one per projector row, tile after tile, global tile last); the tile labels and
markers are neither ``image`` nor ``text``.

Stages: ``"vision"`` = every tile's SigLIP rows at the projector's input (``"patches"``) or
the pixel-shuffled rows its first linear layer sees (``"merged"``); ``"projector"`` = what
``get_image_features`` returns.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AyaVisionConfig,
    AyaVisionForConditionalGeneration,
    AyaVisionProcessor,
    GotOcr2ImageProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.cohere import cohere_parts
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE
from mm_align.adapters.tiny.vision import tiny_siglip_vision

__all__ = ["AyaVisionAdapter"]


@register("aya_vision")
class AyaVisionAdapter(GenericVLMAdapter):
    """Aya Vision adapter; see the module doc for tiles and markers."""

    model_class = AyaVisionForConditionalGeneration
    example_id = "CohereLabs/aya-vision-8b"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP (2 layers, width 32, 56 px tiles of 16 patches -> 4 tokens), up to 2 tiles
        plus the global one, + Cohere2 (2 layers, width 64). Randomly initialised."""
        tokenizer, ids, text = cohere_parts("<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>",
                                            "<|IMG_LINE_BREAK|>")
        config = AyaVisionConfig(
            vision_config=tiny_siglip_vision(),
            text_config=text,
            downsample_factor=2,
            image_token_index=ids["<|IMG_PATCH|>"],
        )
        processor = AyaVisionProcessor(
            image_processor=GotOcr2ImageProcessor(size={"height": 56, "width": 56}, crop_to_patches=True,
                                                  min_patches=1, max_patches=2),
            tokenizer=tokenizer,
            patch_size=14,
            img_size=56,
            downsample_factor=2,
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
        return build_and_save(AyaVisionForConditionalGeneration, config, processor, directory, seed)
