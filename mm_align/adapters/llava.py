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
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer

__all__ = ["LLAVA_CHAT_TEMPLATE", "LlavaAdapter", "llava_tokenizer", "tiny_clip_vision", "tiny_llama_text"]

# The llava-hf chat template of LLaVA-1.5 (images first, then text, "USER:" / "ASSISTANT:").
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


@register("llava")
class LlavaAdapter(GenericVLMAdapter):
    """LLaVA adapter; see :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks."""

    model_class = LlavaForConditionalGeneration
    example_id = "llava-hf/llava-1.5-7b-hf"
    # The projector's input is the selected layer with the CLS rule already applied: reading
    # it there is more faithful than re-deriving the selection from the config.
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")

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


CLIP_IMAGE_SIZE, CLIP_PATCH_SIZE = 56, 14


def llava_tokenizer() -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    """The toy tokenizer with Llama-style ``<s>`` BOS and an ``<image>`` token, and their ids."""
    tokenizer = build_tiny_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in ("<s>", "</s>", "<pad>", "<image>")}


def tiny_clip_vision() -> CLIPVisionConfig:
    """A 2-layer, width-32 CLIP ViT over 56 px images in 14 px patches (16 patches + CLS)."""
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=CLIP_PATCH_SIZE,
        projection_dim=32,
    )


def tiny_llama_text(vocab_size: int, ids: dict[str, int]) -> LlamaConfig:
    """A 2-layer, width-64 Llama with the toy tokenizer's special tokens."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
