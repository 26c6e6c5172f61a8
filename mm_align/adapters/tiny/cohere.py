"""The Cohere pieces of tiny checkpoints (Aya Vision, Command A Vision): the toy tokenizer with
Cohere's special tokens and a 2-layer Cohere2 text config."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from mm_align.adapters.tiny import build_tiny_tokenizer

__all__ = ["cohere_parts"]


def cohere_parts(*special: str, **named: str) -> tuple[PreTrainedTokenizerFast, dict[str, int], dict]:
    """The toy tokenizer with Cohere's BOS / EOS / pad and ``special`` tokens (``named`` ones
    become tokenizer attributes), their ids, and a 2-layer, width-64 Cohere2 text config."""
    tokens = ("<PAD>", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", *special)
    tokenizer = build_tiny_tokenizer(tokens, bos_token="<BOS_TOKEN>", eos_token="<|END_OF_TURN_TOKEN|>",
                                     pad_token="<PAD>", extra_special_tokens=named)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
    text = {"model_type": "cohere2", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
            "max_position_embeddings": 1024, "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"], "pad_token_id": ids["<PAD>"],
            "bos_token_id": ids["<BOS_TOKEN>"], "eos_token_id": ids["<|END_OF_TURN_TOKEN|>"]}
    return tokenizer, ids, text
