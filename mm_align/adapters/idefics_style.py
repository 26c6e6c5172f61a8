"""What the Idefics3 line (Idefics3, SmolVLM) shares: the connector at ``model.connector``
(pixel shuffle, then one linear map) and the LLM at ``model.text_model``. The tile layout and
its markers are described in :mod:`~mm_align.adapters.idefics3`."""

from __future__ import annotations

from mm_align.adapters.generic import GenericVLMAdapter

__all__ = ["IdeficsStyleAdapter"]


class IdeficsStyleAdapter(GenericVLMAdapter):
    """The module paths of an Idefics3-style model."""

    projector_paths = ("model.connector", "connector")
    text_model_paths = ("model.text_model", "text_model")
