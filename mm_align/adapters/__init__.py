"""VLM adapters: one file per model family, the registry, and :func:`load_vlm`.

:mod:`~mm_align.adapters.representation` states what every family delivers. Importing this
package imports no family: the registry imports them (and the ``mm_align.adapters`` entry
points) on the first lookup, so a plugin may import the names below.
"""

from mm_align.adapters.base import VLMAdapter
from mm_align.adapters.encoding import AdapterInputError
from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.adapters.registry import (
    UnsupportedModelError,
    adapter_class,
    disabled_families,
    load_vlm,
    read_config,
    register,
    supported_families,
)
from mm_align.adapters.representation import Representation, normalize_layers
from mm_align.stages import LLM_STAGES, STAGES

__all__ = [
    "LLM_STAGES",
    "STAGES",
    "AdapterInputError",
    "GenericVLMAdapter",
    "Representation",
    "UnsupportedModelError",
    "VLMAdapter",
    "adapter_class",
    "disabled_families",
    "load_vlm",
    "normalize_layers",
    "read_config",
    "register",
    "supported_families",
]
