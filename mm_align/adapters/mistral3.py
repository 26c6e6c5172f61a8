"""Mistral 3 (``model_type`` ``"mistral3"``, e.g. mistralai/Mistral-Small-3.1-24B-Instruct-2503):
Pixtral ViT at the image's own resolution -> projector (RMS norm, patch merger of 2 x 2
patches, MLP) -> Mistral LLM.

Layout: the Pixtral processor writes ``[IMG]`` tokens row by row, ending every row of merged
patches with ``[IMG_BREAK]`` and the image with ``[IMG_END]``. The ``"image"`` stage is the
``[IMG]`` tokens only (one per projector row, in raster order); the break and end markers are
neither ``image`` nor ``text``.

Stages: ``"vision"`` = the ViT's patch rows at the projector's input (``"patches"``) or the
2 x 2 groups its patch merger's linear layer sees (``"merged"``); ``"projector"`` = what
``get_image_features`` returns.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PixtralImageProcessor,
    PixtralProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer
from mm_align.adapters.tiny.llama import LLAVA_CHAT_TEMPLATE, tiny_llama_text

__all__ = ["Mistral3Adapter"]


@register("mistral3")
class Mistral3Adapter(GenericVLMAdapter):
    """Mistral 3 adapter; see the module doc for the row-break layout."""

    model_class = Mistral3ForConditionalGeneration
    example_id = "mistralai/Mistral-Small-3.1-24B-Instruct-2503"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Pixtral (2 layers, width 32, 8 px patches, images of at most 64 px) merged 2 x 2 +
        Mistral (2 layers, width 64). Randomly initialised."""
        tokens = ("<unk>", "<s>", "</s>", "<pad>", "[IMG]", "[IMG_BREAK]", "[IMG_END]")
        tokenizer = build_tiny_tokenizer(tokens, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                         pad_token="<pad>")
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
        text = tiny_llama_text(len(tokenizer), ids).to_dict()
        config = Mistral3Config(
            vision_config={"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 16,
                           "image_size": 64, "patch_size": 8},
            text_config={**text, "model_type": "mistral", "head_dim": 16},
            image_token_index=ids["[IMG]"],
            spatial_merge_size=2,
        )
        processor = PixtralProcessor(
            image_processor=PixtralImageProcessor(size={"longest_edge": 64}, patch_size={"height": 8, "width": 8}),
            tokenizer=tokenizer,
            patch_size=8,
            spatial_merge_size=2,
            chat_template=LLAVA_CHAT_TEMPLATE.replace("<image>", "[IMG]"),
        )
        return build_and_save(Mistral3ForConditionalGeneration, config, processor, directory, seed)
