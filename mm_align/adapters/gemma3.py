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
    PreTrainedTokenizerFast,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.llava_onevision import tiny_siglip_vision
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_tiny_tokenizer, save_tiny

__all__ = ["GEMMA_CHAT_TEMPLATE", "Gemma3Adapter", "gemma_text_config", "gemma_tokenizer"]

# Gemma's turn markup, images first within a turn.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}IMAGE{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gemma_tokenizer(*special: str, **named: str) -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    """The toy tokenizer with Gemma's ``<pad> <eos> <bos>`` and ``special`` tokens; ``named``
    (e.g. ``image_token="<image_soft_token>"``) become attributes of the tokenizer."""
    tokens = ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", *special)
    tokenizer = build_tiny_tokenizer(tokens, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                     extra_special_tokens=named)
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}


def gemma_text_config(vocab_size: int, ids: dict[str, int], **extra: object) -> dict:
    """A 2-layer, width-64 Gemma text config (head_dim 16)."""
    return {"vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 1024,
            "pad_token_id": ids["<pad>"], "eos_token_id": ids["<eos>"], "bos_token_id": ids["<bos>"], **extra}


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
