"""The Gemma pieces of tiny checkpoints (Gemma 3, PaliGemma): the toy tokenizer with Gemma's
special tokens, a 2-layer Gemma text config and Gemma's turn markup."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from mm_align.adapters.tiny import build_tiny_tokenizer

__all__ = ["GEMMA_CHAT_TEMPLATE", "gemma_text_config", "gemma_tokenizer"]

# Gemma's turn markup, images first within a turn; IMAGE stands for the image.
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
