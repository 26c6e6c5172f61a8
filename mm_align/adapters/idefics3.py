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

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
)

from mm_align.adapters.idefics_style import IdeficsStyleAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.idefics import IDEFICS_CHAT_TEMPLATE, idefics_parts

__all__ = ["Idefics3Adapter"]


@register("idefics3")
class Idefics3Adapter(IdeficsStyleAdapter):
    """Idefics3 adapter; see the module doc for tiles and markers."""

    model_class = Idefics3ForConditionalGeneration
    example_id = "HuggingFaceM4/Idefics3-8B-Llama3"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """See :func:`~mm_align.adapters.tiny.idefics.idefics_parts`. Randomly initialised."""
        tokenizer, config, image_processor = idefics_parts(Idefics3Config, Idefics3ImageProcessor)
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                      chat_template=IDEFICS_CHAT_TEMPLATE)
        return build_and_save(Idefics3ForConditionalGeneration, config, processor, directory, seed)
