"""VLM adapters: one file per model family, the registry, and :func:`load_vlm`."""

from mm_align.adapters.base import (
    LLM_STAGES,
    STAGES,
    AdapterInputError,
    Representation,
    VLMAdapter,
    normalize_layers,
)
from mm_align.adapters.registry import (
    UnsupportedModelError,
    adapter_class,
    load_vlm,
    register,
    supported_families,
)

__all__ = [
    "LLM_STAGES",
    "STAGES",
    "AdapterInputError",
    "Representation",
    "UnsupportedModelError",
    "VLMAdapter",
    "adapter_class",
    "load_vlm",
    "normalize_layers",
    "register",
    "supported_families",
]
