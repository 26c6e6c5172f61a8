"""Record what a model's ``get_image_features`` returns during a forward pass.

``get_image_features`` is the one method every transformers VLM calls to turn pixels into the
rows it writes over the image placeholder tokens. It is a method, not a module, so forward
hooks cannot see it; :func:`image_features_of` wraps it on the instance for the duration of a
``with`` block and removes the wrapper on exit, also when the body raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["feature_rows", "features_owner", "image_features_of"]


def features_owner(model: nn.Module) -> nn.Module:
    """The module whose forward calls ``get_image_features``: the inner ``model.model`` of a
    ``...ForConditionalGeneration`` (transformers 5.x), else the model itself (4.5x)."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and hasattr(inner, "get_image_features"):
        return inner
    if hasattr(model, "get_image_features"):
        return model
    raise AttributeError(f"{type(model).__name__} has no get_image_features")


@contextmanager
def image_features_of(owner: nn.Module) -> Iterator[list[Any]]:
    """Yield a list that receives the return value of every ``owner.get_image_features`` call
    made inside the block, in call order."""
    calls: list[Any] = []
    original = owner.get_image_features

    def recording(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        calls.append(out)
        return out

    # An instance attribute shadows the class's method for this object only.
    object.__setattr__(owner, "get_image_features", recording)
    try:
        yield calls
    finally:
        object.__delattr__(owner, "get_image_features")


def feature_rows(returned: Any) -> torch.Tensor:
    """The image-token rows in a ``get_image_features`` return value, ``(tokens, d_llm)``:
    its ``pooler_output`` (or the value itself), a tensor of any rank or a list / tuple of
    per-image tensors, flattened to rows in image order."""
    value = getattr(returned, "pooler_output", returned)
    parts = value if isinstance(value, (list, tuple)) else [value]
    return torch.cat([part.reshape(-1, part.shape[-1]) for part in parts]).detach().clone()
