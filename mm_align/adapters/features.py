"""Record the calls of a model's methods during a forward pass: above all what
``get_image_features`` returns.

``get_image_features`` is the one method every transformers VLM calls to turn pixels into the
rows it writes over the image placeholder tokens. It is a method, not a module, so forward
hooks cannot see it; :func:`calls_of` wraps a method on the instance for the duration of a
``with`` block and removes the wrapper on exit, also when the body raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Call", "calls_of", "feature_rows", "features_owner", "shadowing"]


def features_owner(model: nn.Module) -> nn.Module:
    """The module whose forward calls ``get_image_features``: the inner ``model.model`` of a
    ``...ForConditionalGeneration`` (transformers 5.x), else the model itself (4.5x)."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and hasattr(inner, "get_image_features"):
        return inner
    if hasattr(model, "get_image_features"):
        return model
    raise AttributeError(f"{type(model).__name__} has no get_image_features")


@dataclass(frozen=True)
class Call:
    """One recorded call: a copy of its first argument (when asked for) and what it returned."""

    first_arg: Any
    returned: Any


@contextmanager
def shadowing(owner: nn.Module, method: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """Call ``replacement`` instead of ``owner.<method>`` inside the block, for this object
    only (an instance attribute shadows the class's method); put back on exit, also when the
    body raises, and nested shadows unwind in order."""
    shadowed = owner.__dict__.get(method)  # an instance attribute already there (a nested wrap)
    object.__setattr__(owner, method, replacement)
    try:
        yield
    finally:
        if shadowed is None:
            object.__delattr__(owner, method)
        else:
            object.__setattr__(owner, method, shadowed)


@contextmanager
def calls_of(owner: nn.Module, method: str, *, keep_first_arg: bool = False) -> Iterator[list[Call]]:
    """Yield a list that receives every call of ``owner.<method>`` made inside the block
    (``keep_first_arg``: with a copy of the call's first argument)."""
    calls: list[Call] = []
    original = getattr(owner, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        first = None
        if keep_first_arg:
            first = args[0] if args else next(iter(kwargs.values()), None)
            first = first.detach().clone() if isinstance(first, torch.Tensor) else first
        calls.append(Call(first, out))
        return out

    with shadowing(owner, method, recording):
        yield calls


def feature_rows(returned: Any) -> torch.Tensor:
    """The image-token rows in a ``get_image_features`` return value, ``(tokens, d_llm)``:
    its ``pooler_output`` (or the value itself), a tensor of any rank or a list / tuple of
    per-image tensors, flattened to rows in image order."""
    value = getattr(returned, "pooler_output", returned)
    parts = value if isinstance(value, (list, tuple)) else [value]
    return torch.cat([part.reshape(-1, part.shape[-1]) for part in parts]).detach().clone()
