"""Gemma 3 (``model_type`` ``"gemma3"``, e.g. google/gemma-3-4b-it): SigLIP ViT -> average
pooling to ``mm_tokens_per_image`` soft tokens, RMS norm and one projection matrix -> Gemma 3.

Stages: ``"vision"`` = the SigLIP output at the projector's input (one row per patch; the
connector pools patches instead of concatenating them and has no linear layer, so only the
``"patches"`` view exists); ``"projector"`` = what ``get_image_features`` returns, one row per
image soft token. Plain prompt: ``<bos>``, then ``<start_of_image>``, which the processor
expands to ``\\n\\n<start_of_image>`` + soft tokens + ``<end_of_image>\\n\\n``, then the text.

Attention: the soft tokens of one image attend to each other bidirectionally
(``token_type_ids``), but not to the text after them, so the image prefix of the joint pass
still equals the image seen alone (declared ``image_prefix_is_image_only``; the common tests
check it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import save_tiny
from mm_align.adapters.tiny.gemma import GEMMA_CHAT_TEMPLATE, gemma_text_config, gemma_tokenizer
from mm_align.adapters.tiny.vision import tiny_siglip_vision

__all__ = ["Gemma3Adapter"]

@register("gemma3")
class Gemma3Adapter(GenericVLMAdapter):
    """Gemma 3 adapter; see the module doc."""

    model_class = Gemma3ForConditionalGeneration
    example_id = "google/gemma-3-4b-it"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    vision_views = ("patches",)

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP (2 layers, width 32, 112 px, 64 patches) pooled 2 x 2 to 16 soft tokens +
        Gemma 3 (one sliding-window and one global layer, width 64). Randomly initialised."""
        tokenizer, ids = gemma_tokenizer(
            "<start_of_image>", "<end_of_image>", "<image_soft_token>",
            boi_token="<start_of_image>", eoi_token="<end_of_image>", image_token="<image_soft_token>",
        )
        config = Gemma3Config(
            text_config=gemma_text_config(len(tokenizer), ids, query_pre_attn_scalar=16, sliding_window=8,
                                          layer_types=["sliding_attention", "full_attention"]),
            vision_config=tiny_siglip_vision(image_size=112),
            mm_tokens_per_image=16,
            boi_token_index=ids["<start_of_image>"],
            eoi_token_index=ids["<end_of_image>"],
            image_token_index=ids["<image_soft_token>"],
        )
        processor = Gemma3Processor(
            image_processor=Gemma3ImageProcessor(size={"height": 112, "width": 112}),
            tokenizer=tokenizer,
            image_seq_length=16,
            chat_template=GEMMA_CHAT_TEMPLATE.replace("IMAGE", "<start_of_image>"),
        )
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
        # Gemma 3 initialises its projection matrix to zeros: every soft token would be the same
        # vector and the projector stage would have no spectrum.
        nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.02)
        return save_tiny(model, processor, directory)
