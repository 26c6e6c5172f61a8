"""From a run's options to the arguments of the model loaders: the one place where the
``auto`` device and dtype are resolved and ``trust_remote_code`` is made explicit.

Every ``from_pretrained`` call gets ``trust_remote_code`` spelled out: when it is left
unset, transformers asks y/N on a terminal for a checkpoint that ships code (``auto_map``),
which hangs a batch job and invites a reflexive "y". Here such a checkpoint is refused
unless ``--trust-remote-code`` is given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mm_align.adapters.modules import HUB_KWARGS
from mm_align.adapters.registry import read_config
from mm_align.adapters.text import FILE_KWARGS
from mm_align.config import RunConfig

__all__ = ["config_kwargs", "hf_kwargs", "load_kwargs", "resolve_device"]

log = logging.getLogger(__name__)

# from_pretrained arguments that locate or parse the config (the rest concern the weights).
CONFIG_KEYS = (*HUB_KWARGS, *FILE_KWARGS)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if a GPU is visible, else ``mps`` (Apple), else ``cpu``; any other
    device string is returned as given."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def hf_kwargs(config: RunConfig) -> dict[str, Any]:
    """The ``from_pretrained`` keyword arguments of a run: ``model_args`` plus the options
    that have their own flag (``revision``, ``attn_implementation``, ``device_map``), with
    ``trust_remote_code`` always explicit."""
    out = {**config.model_args, "trust_remote_code": config.trust_remote_code}
    named = {"revision": config.revision, "attn_implementation": config.attn_implementation,
             "device_map": getattr(config, "device_map", None)}
    out.update({key: value for key, value in named.items() if value is not None})
    return out


def config_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Those of ``kwargs`` that ``AutoConfig.from_pretrained`` needs to find the same config
    (``trust_remote_code`` defaults to False here too)."""
    return {"trust_remote_code": False, **{key: kwargs[key] for key in CONFIG_KEYS if key in kwargs}}


def checkpoint_dtype(model: str, kwargs: Mapping[str, Any]) -> Any:
    """The dtype the checkpoint's config declares (``dtype``, formerly ``torch_dtype``);
    float32 when it declares none (transformers' own default)."""
    config = read_config(model, **config_kwargs(kwargs))  # knows families outside transformers too
    return getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"


def load_kwargs(config: RunConfig) -> dict[str, Any]:
    """``device``, ``dtype`` (``auto`` resolved) and the :func:`hf_kwargs` of a run, for
    :func:`~mm_align.adapters.load_vlm` and
    :meth:`~mm_align.adapters.text.TextAdapter.from_pretrained`; logs where the model goes."""
    kwargs = hf_kwargs(config)
    device = resolve_device(config.device)
    dtype = checkpoint_dtype(config.model, kwargs) if config.dtype == "auto" else config.dtype
    where = f"device_map={kwargs['device_map']}" if "device_map" in kwargs else f"device {device}"
    log.info("loading %s on %s, dtype %s", config.model, where, str(dtype).removeprefix("torch."))
    return {"device": device, "dtype": dtype, **kwargs}
