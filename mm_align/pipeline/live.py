"""A model in the middle of its training, borrowed for a measurement and handed back as it was.

:func:`borrowed` unwraps the model from its parallel containers (DDP, DeepSpeed's engine,
``torch.compile``), takes off the autocast wrapper that ``accelerate`` puts around
``forward`` for mixed precision, and turns autocast off: the measurement runs in the
weights' own dtype, as a saved checkpoint would be scored. On exit it restores what the
measurement may touch: every module's ``training`` flag (an adapter puts the model in eval
mode), the random number generators (torch CPU and CUDA, numpy, Python's ``random``) and
the autocast state, so the training that goes on after it is the one that would have gone
on without it, bit for bit.

Sharded parameters (FSDP, DeepSpeed ZeRO-3) are refused: a forward pass of one process's
shard is not the model.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ShardedModelError", "borrowed", "unwrap"]

_AUTOCAST_DEVICES = ("cpu", "cuda")


class ShardedModelError(ValueError):
    """The model's parameters are sharded across processes (FSDP, ZeRO-3)."""


def unwrap(model: Any) -> nn.Module:
    """The model inside DDP / DataParallel / DeepSpeed / FSDP / ``torch.compile`` wrappers.

    Raises:
        ShardedModelError: FSDP or ZeRO-3 shards its parameters over the processes.
    """
    from accelerate.utils import extract_model_from_parallel

    _refuse_sharded(model)
    inner = extract_model_from_parallel(model, keep_torch_compile=False)
    _refuse_sharded(inner)
    return inner


def _refuse_sharded(model: Any) -> None:
    name = type(model).__name__
    sharded = name in ("FullyShardedDataParallel", "FSDPModule") or name.startswith("FSDP")
    for param in model.parameters():
        # ZeRO-3 keeps an empty placeholder per parameter; FSDP2 makes them DTensors
        sharded = sharded or hasattr(param, "ds_id") or type(param).__name__ == "DTensor"
        break
    if sharded:
        raise ShardedModelError(
            f"the model's parameters are sharded over the processes ({name}): the probe needs whole "
            "weights; score saved checkpoints with `mm-align sweep` instead, or train with DDP / ZeRO-1/2")


@contextmanager
def _plain_forward(model: nn.Module) -> Iterator[None]:
    """``model.forward`` without accelerate's mixed-precision wrapper while the context lasts."""
    original = model.__dict__.get("_original_forward")
    if original is None:
        yield
        return
    wrapped = model.__dict__.get("forward")
    model.forward = original  # type: ignore[method-assign]
    try:
        yield
    finally:
        if wrapped is None:
            del model.forward
        else:
            model.forward = wrapped  # type: ignore[method-assign]


@contextmanager
def _kept_rng() -> Iterator[None]:
    """The random generators of torch (CPU and every initialised CUDA device), numpy and
    Python, restored on exit."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


@contextmanager
def _kept_modes(model: nn.Module) -> Iterator[None]:
    """Every submodule's ``training`` flag restored on exit (a frozen tower may be in eval
    mode inside a model in training mode)."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextmanager
def borrowed(model: Any) -> Iterator[nn.Module]:
    """The unwrapped ``model`` to measure without gradients, with autocast off; its modes,
    the random generators and the autocast state are restored on exit (see the module doc).

    Raises:
        ShardedModelError: the parameters are sharded (FSDP, ZeRO-3).
    """
    inner = unwrap(model)
    with ExitStack() as stack:
        stack.enter_context(_kept_rng())
        stack.enter_context(_kept_modes(inner))
        stack.enter_context(torch.no_grad())
        for device in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device):
                stack.enter_context(torch.autocast(device, enabled=False))
        stack.enter_context(_plain_forward(inner))
        yield inner
