"""Idefics3 (``model_type`` ``"idefics3"``, e.g. HuggingFaceM4/Idefics3-8B-Llama3): SigLIP
over image tiles -> connector (pixel shuffle of ``scale_factor`` x ``scale_factor`` patches,
then one linear map) -> Llama 3.

Layout: the image is split into a grid of tiles plus a global (downscaled) tile. The processor
writes, per tile, ``<fake_token_around_image><row_R_col_C>`` followed by ``image_seq_len``
``<image>`` tokens, then ``<fake_token_around_image><global-img>`` and the global tile's
``<image>`` tokens, closed by ``<fake_token_around_image>`` (tile rows are separated by
``"\\n"``). The ``"image"`` stage is the ``<image>`` tokens only: one per projector row, tile
after tile, global tile last. Tile, row and global markers and the newlines are neither
``image`` nor ``text``.

Stages: ``"vision"`` = every tile's SigLIP rows at the connector's input (``"patches"``) or the
pixel-shuffled rows its linear layer sees (``"merged"``: ``scale_factor**2`` x width);
``"projector"`` = what ``get_image_features`` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.llava import tiny_llama_text
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer

__all__ = ["IDEFICS_CHAT_TEMPLATE", "Idefics3Adapter", "idefics_parts"]

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


@register("idefics3")
class Idefics3Adapter(GenericVLMAdapter):
    """Idefics3 adapter; see the module doc for tiles and markers."""

    model_class = Idefics3ForConditionalGeneration
    example_id = "HuggingFaceM4/Idefics3-8B-Llama3"
    projector_paths = ("model.connector", "connector")
    text_model_paths = ("model.text_model", "text_model")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """See :func:`idefics_parts`. Randomly initialised."""
        tokenizer, config, image_processor = idefics_parts(Idefics3Config, Idefics3ImageProcessor)
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                      chat_template=IDEFICS_CHAT_TEMPLATE)
        return build_and_save(Idefics3ForConditionalGeneration, config, processor, directory, seed)
