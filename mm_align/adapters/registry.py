"""The one place mapping a config ``model_type`` to its adapter class, and :func:`load_vlm`.

A family registers itself with ``@register("model_type")`` in its own module under
``mm_align/adapters/``; every module there is imported on the first lookup (never while
``mm_align.adapters`` itself is being imported), so adding a family is adding one file.
Families outside this package register through the Python entry point group
``mm_align.adapters`` (each entry point names a module or an adapter class; loading it runs
its ``@register``), so a lab can plug in its own model without forking; such a module may say
``from mm_align.adapters import register, VLMAdapter``.

A family module imports shared modules only, never another family (tests check it), so a
module that fails to import (a transformers release without that model) disables its family
only: :func:`disabled_families` gives the reason, the others keep working.

A family outside transformers (MiniGPT-v2) registers its config with ``AutoConfig`` when its
module is imported: read a checkpoint's config with :func:`read_config`, which imports the
families first, never with a bare ``AutoConfig.from_pretrained``."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import AutoConfig, PreTrainedConfig

from mm_align.adapters.base import DeepstackReading, VisionView, VLMAdapter
from mm_align.adapters.encoding import PromptStyle
from mm_align.adapters.modules import HUB_KWARGS

__all__ = [
    "ENTRY_POINT_GROUP",
    "UnsupportedModelError",
    "adapter_class",
    "disabled_families",
    "load_vlm",
    "read_config",
    "register",
    "supported_families",
]

ENTRY_POINT_GROUP = "mm_align.adapters"
_ADAPTERS: dict[str, type[VLMAdapter]] = {}
_DISABLED: dict[str, str] = {}  # module or entry point name -> why it could not be imported
_A = TypeVar("_A", bound=type[VLMAdapter])


class UnsupportedModelError(ValueError):
    """The checkpoint's ``model_type`` has no adapter."""


def register(model_type: str) -> Callable[[_A], _A]:
    """Class decorator: serve configs whose ``model_type`` is ``model_type`` with this adapter."""

    def decorate(cls: _A) -> _A:
        if model_type in _ADAPTERS and _ADAPTERS[model_type] is not cls:
            raise ValueError(f"model type {model_type!r} is already served by {_ADAPTERS[model_type].__name__}")
        cls.model_type = model_type
        _ADAPTERS[model_type] = cls
        return cls

    return decorate


_STARTED = threading.Event()  # set once _import_families has begun in this process
_IMPORTING = threading.RLock()  # another thread waits for the whole import; a plugin's own lookup passes


def _import_families() -> None:
    """Import every module of this package, then every ``mm_align.adapters`` entry point, once
    per process; a failure is recorded against its name instead of raised. A plugin may look a
    family up while it is imported (``class Mine(adapter_class("llava"))``): the built-in
    families are registered by then, and the lookup does not start the import again."""
    with _IMPORTING:
        if _STARTED.is_set():
            return
        _STARTED.set()
        package = importlib.import_module("mm_align.adapters")
        for module in pkgutil.iter_modules(package.__path__):
            if not module.ispkg:  # a family is one file; subpackages (tiny/, ports/) are shared parts
                _try(module.name, functools.partial(importlib.import_module, f"mm_align.adapters.{module.name}"))
        for point in entry_points(group=ENTRY_POINT_GROUP):
            _try(point.name, point.load)


def _try(name: str, load: Callable[[], Any]) -> None:
    try:
        load()
    except Exception as exc:
        _DISABLED[name] = f"{type(exc).__name__}: {exc}"


def disabled_families() -> dict[str, str]:
    """Family modules (or entry points) that could not be imported, with the reason."""
    _import_families()
    return dict(sorted(_DISABLED.items()))


def supported_families() -> tuple[str, ...]:
    """The ``model_type`` values that have an adapter, sorted."""
    _import_families()
    return tuple(sorted(_ADAPTERS))


def adapter_class(model_type: str) -> type[VLMAdapter]:
    """The adapter class for ``model_type``; :class:`UnsupportedModelError` naming the supported
    families when there is none."""
    families = supported_families()
    if model_type not in _ADAPTERS:
        why = f" ({_DISABLED[model_type]})" if model_type in _DISABLED else ""
        raise UnsupportedModelError(
            f"model type {model_type!r} is not supported{why}; supported families: {', '.join(families)}"
        )
    return _ADAPTERS[model_type]


def read_config(path_or_id: str | Path, **config_kwargs: Any) -> PreTrainedConfig:
    """``AutoConfig.from_pretrained(path_or_id, **config_kwargs)`` once every family is imported,
    so that a family outside transformers (its module registers its config) is known too."""
    _import_families()
    return AutoConfig.from_pretrained(path_or_id, **config_kwargs)


def load_vlm(
    path_or_id: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    prompt: PromptStyle = "plain",
    include_special: bool = False,
    vision_view: VisionView | None = None,
    max_visual_tokens: int | None = None,
    count_first_position: bool = False,
    deepstack: DeepstackReading = "output",
    **hf_kwargs: Any,
) -> VLMAdapter:
    """Load a vision-language model and wrap it in its family's adapter.

    The config is read with ``AutoConfig.from_pretrained``; its ``model_type`` picks the
    adapter (:func:`supported_families`), which loads the model with the family's real
    transformers class. ``trust_remote_code`` is off unless passed in ``hf_kwargs``.
    ``dtype``: ``"float32"``, ``"bfloat16"``, ``"float16"`` or a ``torch.dtype``. See
    :class:`~mm_align.adapters.base.VLMAdapter` for ``prompt`` and ``include_special``;
    ``vision_view`` (``"patches"`` or ``"merged"``, default: the family's first, ``"patches"``)
    picks the rows of the ``"vision"`` stage (:mod:`~mm_align.adapters.generic`);
    ``max_visual_tokens``: a sample with more image or video tokens is refused (default: the
    LLM's context); ``count_first_position`` counts position 0 in the LLM stages and
    ``deepstack`` picks what Qwen3-VL's layers 1..k hold (both
    :class:`~mm_align.adapters.base.VLMAdapter`)."""
    name = str(path_or_id)
    # A hub id is "owner/name"; anything else that does not exist is a mistyped local path,
    # which deserves a plainer error than the hub client's repo-id validation.
    if not Path(name).exists() and (Path(name).is_absolute() or name.startswith((".", "~"))
                                    or name.count("/") > 1):
        raise FileNotFoundError(f"no such checkpoint folder: {name}")
    hf_kwargs.setdefault("trust_remote_code", False)  # explicit: unset, transformers prompts y/N
    config_kwargs = {key: hf_kwargs[key] for key in HUB_KWARGS if key in hf_kwargs}
    config = read_config(path_or_id, **config_kwargs)
    cls = adapter_class(config.model_type)
    return cls.from_pretrained(
        path_or_id,
        device=device,
        dtype=dtype,
        prompt=prompt,
        include_special=include_special,
        vision_view=vision_view,
        max_visual_tokens=max_visual_tokens,
        count_first_position=count_first_position,
        deepstack=deepstack,
        config=config,
        **hf_kwargs,
    )
