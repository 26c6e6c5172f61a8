"""InternVL (``model_type`` ``"internvl"``, e.g. OpenGVLab/InternVL3-1B-hf): InternViT over
448 px tiles -> pixel shuffle (2 x 2 patches into one row of 4x width) -> MLP projector -> LLM.

Layout: the image is cut into up to ``max_patches`` tiles plus a thumbnail; each tile gives
``image_seq_length`` context tokens ``<IMG_CONTEXT>``, and the processor wraps the image's
tokens in ``<img>`` ... ``</img>``. The ``"image"`` stage is the context tokens only (one per
projector row, tile after tile); ``<img>`` and ``</img>`` are markers, counted in neither
``image`` nor ``text``.

Stages: ``"projector"`` = what ``get_image_features`` returns. ``"vision"``: the pixel shuffle
is a method, not a module, so the ``"patches"`` view is its input (the ViT's rows, CLS
dropped, one per patch of every tile), and the ``"merged"`` view is the projector's first
linear layer's input (one row per image token of 4x ViT width, after its LayerNorm).
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    GotOcr2ImageProcessor,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVideoProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer
from mm_align.adapters.tiny.qwen import QWEN_SPECIAL_TOKENS, qwen_chat_template

__all__ = ["InternVLAdapter"]

_MARKERS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>"}


@register("internvl")
class InternVLAdapter(GenericVLMAdapter):
    """InternVL adapter; see the module doc for tiles and context tokens."""

    model_class = InternVLForConditionalGeneration
    example_id = "OpenGVLab/InternVL3-1B-hf"
    vision_tap = "pixel_shuffle() input (ViT rows, CLS dropped)"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    patches_method = "pixel_shuffle"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """InternViT (2 layers, width 32, 56 px tiles of 16 patches -> 4 tokens), up to 2 tiles
        plus a thumbnail, + Qwen2 LLM (2 layers, width 64). Randomly initialised."""
        tokens = (*QWEN_SPECIAL_TOKENS, *_MARKERS.values())
        tokenizer = build_tiny_tokenizer(tokens, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                         extra_special_tokens=_MARKERS)
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}
        config = InternVLConfig(
            vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "intermediate_size": 64, "image_size": [56, 56], "patch_size": [14, 14]},
            text_config={"model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": 64,
                         "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "num_key_value_heads": 2, "max_position_embeddings": 1024,
                         "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
            image_token_id=ids["<IMG_CONTEXT>"],
            image_seq_length=4,
        )
        size = {"height": 56, "width": 56}
        processor = InternVLProcessor(
            image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=2),
            video_processor=InternVLVideoProcessor(size=size),
            tokenizer=tokenizer,
            image_seq_length=4,
            chat_template=qwen_chat_template("<IMG_CONTEXT>\n"),
        )
        return build_and_save(InternVLForConditionalGeneration, config, processor, directory, seed)
