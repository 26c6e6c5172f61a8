"""Ovis2 (``model_type`` ``"ovis2"``, e.g. thisisiron/Ovis2-1B-hf): a ViT whose "visual
tokenizer" head turns each group of ``hidden_stride`` x ``hidden_stride`` patches into a
probability distribution over a visual vocabulary -> a visual embedding table (the projector:
probabilities times embeddings) -> Qwen2.

Layout: the processor writes ``<IMG_START>``, the global view's ``<IMG_ATOM>`` tokens,
``<IMG_GRID>``, then each tile's atoms separated by ``<IMG_COL>`` / ``<IMG_ROW>``, and
``<IMG_END>``. The ``"image"`` stage is the ``<IMG_ATOM>`` tokens only (one per projector row);
the five indicator tokens get embeddings of their own from the table and are markers, neither
``image`` nor ``text``.

Stages: ``"vision"`` = the ViT's rows, one per patch (``"patches"``), or the
``hidden_stride**2`` groups its head's linear layer sees (``"merged"``); ``"projector"`` = what
``get_image_features`` returns (the table's output at the atoms). ``adapter.projector`` is the
visual embedding table.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import (
    Ovis2Config,
    Ovis2ForConditionalGeneration,
    Ovis2ImageProcessor,
    Ovis2Processor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.modules import probe_module
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer
from mm_align.adapters.tiny.qwen import QWEN_SPECIAL_TOKENS, qwen_chat_template
from mm_align.capture import Tap, input_of, output_of

__all__ = ["Ovis2Adapter"]

_INDICATORS = ("<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>")


@register("ovis2")
class Ovis2Adapter(GenericVLMAdapter):
    """Ovis2 adapter; see the module doc for the visual tokenizer."""

    model_class = Ovis2ForConditionalGeneration
    example_id = "thisisiron/Ovis2-1B-hf"
    vision_tap = "vision_tower.transformer output"
    projector_paths = ("model.visual_embeddings_table", "visual_embeddings_table")

    def _tower(self, name: str) -> nn.Module:
        return probe_module(self.model, (f"model.vision_tower.{name}", f"vision_tower.{name}"), f"vision {name}")

    def _patches_tap(self) -> Tap:
        return output_of(self._tower("transformer"))

    def _merged_tap(self) -> Tap:
        return input_of(self._tower("head_linear"))

    @classmethod
    def taps(cls) -> dict[str, str]:
        return {**super().taps(), "merged": "vision_tower.head_linear input"}

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 layers, width 32, 56 px tiles of 16 patches, grouped 2 x 2 into 4 atoms),
        a 32-word visual vocabulary, + Qwen2 (2 layers, width 64). Randomly initialised."""
        tokens = (*QWEN_SPECIAL_TOKENS, "<image>", "<IMG_ATOM>", *_INDICATORS)
        tokenizer = build_tiny_tokenizer(tokens, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
        config = Ovis2Config(
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "image_size": 56, "patch_size": 14, "vocab_size": 32,
                           "hidden_stride": 2, "num_visual_indicator_tokens": len(_INDICATORS)},
            text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 64,
                         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "max_position_embeddings": 1024,
                         "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
            image_token_id=ids["<IMG_ATOM>"],
            visual_indicator_token_ids=[ids[token] for token in _INDICATORS],
            vocab_size=len(tokenizer),
            hidden_size=64,
        )
        processor = Ovis2Processor(
            image_processor=Ovis2ImageProcessor(size={"height": 56, "width": 56}, crop_to_patches=True,
                                                max_patches=4),
            tokenizer=tokenizer,
            image_seq_length=4,
            chat_template=qwen_chat_template("<image>\n"),
        )
        return build_and_save(Ovis2ForConditionalGeneration, config, processor, directory, seed)
