"""SmolVLM (``model_type`` ``"smolvlm"``, e.g. HuggingFaceTB/SmolVLM2-256M-Video-Instruct):
the Idefics3 architecture (SigLIP tiles -> pixel-shuffle connector -> SmolLM).

Layout, stages and views as in :mod:`~mm_align.adapters.idefics3`: the ``"image"`` stage is
the ``<image>`` tokens only, tile after tile, global tile last; the tile, row and global
markers are neither ``image`` nor ``text``. Its processor spells tile rows out in words, which
needs the ``num2words`` package (a dependency of mm-align).
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
)

from mm_align.adapters.idefics_style import IdeficsStyleAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.idefics import IDEFICS_CHAT_TEMPLATE, TILE, idefics_parts

__all__ = ["SmolVLMAdapter"]


@register("smolvlm")
class SmolVLMAdapter(IdeficsStyleAdapter):
    """SmolVLM adapter; see :mod:`~mm_align.adapters.idefics3` for tiles and markers."""

    model_class = SmolVLMForConditionalGeneration
    example_id = "HuggingFaceTB/SmolVLM2-2.2B-Instruct"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """As Idefics3's tiny checkpoint (:func:`~mm_align.adapters.tiny.idefics.idefics_parts`)."""
        tokenizer, config, image_processor = idefics_parts(SmolVLMConfig, SmolVLMImageProcessor)
        processor = SmolVLMProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=SmolVLMVideoProcessor(
                size={"longest_edge": 2 * TILE}, max_image_size={"longest_edge": TILE}
            ),
            image_seq_len=4,
            chat_template=IDEFICS_CHAT_TEMPLATE,
        )
        return build_and_save(SmolVLMForConditionalGeneration, config, processor, directory, seed)
