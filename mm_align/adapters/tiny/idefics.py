"""The Idefics3 pieces of tiny checkpoints (Idefics3, SmolVLM): tokenizer, config and image
processor of a 2 x 2-tile model, and Idefics3's chat template."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerFast

from mm_align.adapters.tiny import build_tiny_tokenizer
from mm_align.adapters.tiny.llama import tiny_llama_text

__all__ = ["IDEFICS_CHAT_TEMPLATE", "TILE", "idefics_parts"]

# Idefics3's "User:<image>text<end_of_utterance>" turns.
IDEFICS_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}"
    "{{ message['role'] | capitalize }}:"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<image>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
TILE = 32  # px per tile: 4 x 4 patches of 8 px, shuffled 2 x 2 into 4 image tokens


def idefics_parts(config_class: type, image_processor_class: type) -> tuple[PreTrainedTokenizerFast, Any, Any]:
    """The toy tokenizer, a tiny config (SigLIP: 2 layers, width 32, 32 px tiles; Llama: 2
    layers, width 64) and an image processor splitting images of up to 64 px into <= 2 x 2
    tiles, for Idefics3 and its descendants."""
    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokens = ("<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<fake_token_around_image>", "<image>",
              "<end_of_utterance>", "<global-img>", *rows)
    tokenizer = build_tiny_tokenizer(tokens, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                     unk_token="<unk>", pad_token="<pad>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
    text = tiny_llama_text(len(tokenizer), {"<s>": ids["<|begin_of_text|>"], "</s>": ids["<|end_of_text|>"],
                                            "<pad>": ids["<pad>"]})
    config = config_class(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": TILE, "patch_size": 8},
        text_config=text.to_dict(),
        image_token_id=ids["<image>"],
        scale_factor=2,
        pad_token_id=ids["<pad>"],
    )
    image_processor = image_processor_class(size={"longest_edge": 2 * TILE}, max_image_size={"longest_edge": TILE})
    return tokenizer, config, image_processor
