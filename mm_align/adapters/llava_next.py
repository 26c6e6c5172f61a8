"""LLaVA-NeXT (``model_type`` ``"llava_next"``, e.g. llava-hf/llava-v1.6-mistral-7b-hf): CLIP
ViT over "anyres" tiles -> MLP projector -> LLM.

Layout: the image is resized to the best of ``image_grid_pinpoints`` and cut into tiles, plus
one base tile of the whole image. The ViT and the projector run on every tile; the model then
keeps the base tile's rows, un-pads the grid tiles' rows to the image's aspect ratio and ends
every row of that grid with the learned ``image_newline`` vector. The image placeholder tokens
are exactly those packed rows, so:

- ``"vision"``: the projector's input, every tile's patches (base tile first), padding included;
- ``"projector"``: what ``get_image_features`` returns, one row per image token: base tile
  rows, then the un-padded grid rows with an ``image_newline`` row closing each grid row;
- ``"image"``: the LLM states at all of those image tokens (newline tokens included).

Hence ``vision`` and ``projector`` row counts are not in a fixed ratio.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE, llava_tokenizer, tiny_llama_text
from mm_align.adapters.tiny.vision import (
    CLIP_IMAGE_SIZE,
    CLIP_PATCH_SIZE,
    TINY_PINPOINTS,
    tiny_clip_vision,
)

__all__ = ["LlavaNextAdapter"]


@register("llava_next")
class LlavaNextAdapter(GenericVLMAdapter):
    """LLaVA-NeXT adapter; see the module doc for the anyres layout."""

    model_class = LlavaNextForConditionalGeneration
    example_id = "llava-hf/llava-v1.6-mistral-7b-hf"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """CLIP (2 layers, width 32, 56 px tiles of 16 patches) + Llama (2 layers, width 64),
        grids up to 2 x 2 tiles. Randomly initialised."""
        tokenizer, ids = llava_tokenizer()
        config = LlavaNextConfig(
            vision_config=tiny_clip_vision(),
            text_config=tiny_llama_text(len(tokenizer), ids),
            image_token_index=ids["<image>"],
            image_grid_pinpoints=TINY_PINPOINTS,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
        )
        image_processor = LlavaNextImageProcessor(
            size={"shortest_edge": CLIP_IMAGE_SIZE},
            crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
            image_grid_pinpoints=TINY_PINPOINTS,
        )
        processor = LlavaNextProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=CLIP_PATCH_SIZE,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=LLAVA_CHAT_TEMPLATE,
        )
        return build_and_save(LlavaNextForConditionalGeneration, config, processor, directory, seed)
