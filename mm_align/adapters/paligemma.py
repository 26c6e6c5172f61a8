"""PaliGemma (``model_type`` ``"paligemma"``, e.g. google/paligemma2-3b-pt-224): SigLIP ViT ->
one linear projection -> Gemma, with prefix-LM attention.

Stages: ``"vision"`` = the SigLIP output at the projector's input; ``"projector"`` = what
``get_image_features`` returns, one row per image token. Prompt: the processor lays a sample
out as image tokens, ``<bos>``, the text, ``"\\n"``; PaliGemma has no chat template, so only
the ``plain`` prompt exists. The text-only pass is laid out the same way without the image
(the processor refuses a sample without an image, so the tokenizer builds it).

Attention: the whole prefix (image tokens and prompt) attends bidirectionally, so in the joint
pass the image tokens see the text and their states are NOT the image's own. The ``"image"``
stage therefore comes from a pass of its own over the image tokens alone
(``image_prefix_is_image_only = False``); ``"joint"`` keeps the joint pass's states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    SiglipImageProcessor,
)

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.gemma import gemma_text_config, gemma_tokenizer
from mm_align.adapters.tiny.vision import tiny_siglip_vision

__all__ = ["PaliGemmaAdapter"]


@register("paligemma")
class PaliGemmaAdapter(GenericVLMAdapter):
    """PaliGemma adapter; see the module doc for the prefix-LM attention."""

    model_class = PaliGemmaForConditionalGeneration
    example_id = "google/paligemma-3b-pt-224"
    projector_paths = ("model.multi_modal_projector", "multi_modal_projector")
    image_prefix_is_image_only = False
    prompt_styles = ("plain",)
    prompt_tail = "\n"

    def _process(self, prompt: str, image: Any | None) -> dict[str, torch.Tensor]:
        if image is not None:
            return super()._process(prompt, image)
        tokenizer = self.processor.tokenizer
        encoded = tokenizer([tokenizer.bos_token + prompt + self.prompt_tail], return_tensors="pt",
                            return_offsets_mapping=True, add_special_tokens=False)
        inputs = dict(encoded)
        inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])  # all prefix, as the processor marks it
        return inputs

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """SigLIP (2 layers, width 32, 56 px: 16 image tokens) + Gemma (2 layers, width 64).
        Randomly initialised."""
        tokenizer, ids = gemma_tokenizer("<image>", image_token="<image>")
        image_processor = SiglipImageProcessor(size={"height": 56, "width": 56})
        image_processor.image_seq_length = 16
        processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
        config = PaliGemmaConfig(
            text_config={"model_type": "gemma", **gemma_text_config(len(processor.tokenizer), ids)},
            vision_config=tiny_siglip_vision(),
            image_token_index=ids["<image>"],
            projection_dim=64,
            hidden_size=64,
            vocab_size=len(processor.tokenizer),
        )
        return build_and_save(PaliGemmaForConditionalGeneration, config, processor, directory, seed)
