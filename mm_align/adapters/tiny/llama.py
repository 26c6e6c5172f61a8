"""The Llama-style pieces of tiny checkpoints: the toy tokenizer with ``<s>`` BOS and an
``<image>`` token, a 2-layer Llama text config, and LLaVA-1.5's chat template (which several
families' tiny processors borrow, with their own image token)."""

from __future__ import annotations

from transformers import LlamaConfig, PreTrainedTokenizerFast

from mm_align.adapters.tiny import build_tiny_tokenizer

__all__ = ["LLAVA_CHAT_TEMPLATE", "llava_tokenizer", "tiny_llama_text"]

# The llava-hf chat template of LLaVA-1.5 (images first, then text, "USER:" / "ASSISTANT:").
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava_tokenizer() -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    """The toy tokenizer with Llama-style ``<s>`` BOS, ``<image>`` and ``<video>`` tokens, and
    their ids."""
    tokenizer = build_tiny_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"],
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token)
                       for token in ("<s>", "</s>", "<pad>", "<image>", "<video>")}


def tiny_llama_text(vocab_size: int, ids: dict[str, int]) -> LlamaConfig:
    """A 2-layer, width-64 Llama with the toy tokenizer's special tokens (``ids`` of ``<s>``,
    ``</s>``, ``<pad>``)."""
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
