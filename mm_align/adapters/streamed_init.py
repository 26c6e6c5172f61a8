"""Build a seeded random model straight onto its device and dtype, one module at a time,
with exactly the weights of building it whole in float32 on the CPU.

A transformers model built under ``torch.manual_seed(seed)`` draws from the CPU generator
twice: every ``nn.Linear`` / ``nn.Embedding`` constructor draws torch's default init, then
``post_init`` redraws each module with the model's ``_init_weights`` (children first, the
order of ``PreTrainedModel.initialize_weights``). Building it whole holds the float32 model
in CPU RAM (28 GB for a 7B LLM) before it can be cast and moved. Here:

1. **Construction on the meta device**, under a dispatch mode that replays every random draw
   aimed at a meta tensor on a scratch CPU tensor of the same shape and dtype, so the
   generator advances exactly as in a real construction (the values are overwritten later,
   as in the real one). transformers skips ``init_weights`` on the meta device.
2. **Initialisation module by module**, in ``initialize_weights``' order: the module's own
   parameters and buffers are allocated on the CPU in their construction dtype, initialised
   by the model's ``_initialize_weights`` (same draws, same order, so the same values), then
   cast and moved. Peak extra CPU memory: one module's own tensors (one weight matrix).

It refuses (:class:`StreamedInitUnsupported`, and :func:`seeded_init` then builds the model
whole) when the result could differ: tied parameters, a tensor that ``_init_weights`` does not
fully write (its construction-time value would be lost), a meta tensor left outside the
parameters and buffers, a transformers model nested inside (it initialises itself during
construction), or a constructor that cannot run on the meta device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import PreTrainedModel
from transformers import initialization as hf_init

__all__ = ["StreamedInitUnsupported", "streamed_init"]

_RANDOM_OPS = ("uniform", "normal", "bernoulli", "random", "exponential", "cauchy",
               "log_normal", "geometric", "rand", "randn", "randint", "randperm", "multinomial")


class StreamedInitUnsupported(RuntimeError):
    """This model cannot be built module by module with the same weights; build it whole."""


def _is_random(func: Any) -> bool:
    return func.overloadpacket.__name__.rstrip("_") in _RANDOM_OPS


def _on_cpu(value: Any) -> Any:
    """A CPU stand-in of an op argument: a scratch tensor for a meta tensor, cpu for meta."""
    if isinstance(value, torch.Tensor) and value.is_meta:
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="cpu")
    if isinstance(value, torch.device) and value.type == "meta":
        return torch.device("cpu")
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value


class _ReplayRandomOnMeta(TorchDispatchMode):
    """Every random op on the meta device also runs on the CPU, to advance its generator."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_random(func):
            func(*_on_cpu(args), **{k: _on_cpu(v) for k, v in kwargs.items()})
        return func(*args, **kwargs)


class _WrittenStorages(TorchDispatchMode):
    """Records the storages an op writes as a whole (not a slice of them)."""

    def __init__(self) -> None:
        super().__init__()
        self.whole: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        for i, spec in enumerate(func._schema.arguments):
            value = args[i] if i < len(args) else kwargs.get(spec.name)
            written = spec.alias_info is not None and spec.alias_info.is_write
            if written and isinstance(value, torch.Tensor) and value.storage_offset() == 0 \
                    and value.numel() * value.element_size() == value.untyped_storage().nbytes():
                self.whole.add(value.untyped_storage().data_ptr())
        return out


def _init_order(model: PreTrainedModel) -> Iterator[tuple[nn.Module, Callable[..., None]]]:
    """(module, init function) in the order of ``PreTrainedModel.initialize_weights``."""
    def walk(module: nn.Module, fn: Callable[..., None]) -> Iterator[tuple[nn.Module, Callable[..., None]]]:
        for child in module.children():
            yield from walk(child, child._initialize_weights if isinstance(child, PreTrainedModel) else fn)
        yield module, fn
    return walk(model, model._initialize_weights)


def _own_tensors(module: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {"_parameters": {k: v for k, v in module._parameters.items() if v is not None},
            "_buffers": {k: v for k, v in module._buffers.items() if v is not None}}


def _check_flat_and_untied(model: nn.Module) -> None:
    if any(isinstance(m, PreTrainedModel) for m in list(model.modules())[1:]):
        # A sub-model initialises itself inside its own constructor, interleaving its draws.
        raise StreamedInitUnsupported("the model contains another transformers model")
    owners: dict[int, int] = {}
    for module in model.modules():
        for tensors in _own_tensors(module).values():
            for t in tensors.values():
                owners[id(t)] = owners.get(id(t), 0) + 1
    if any(n > 1 for n in owners.values()):
        raise StreamedInitUnsupported("the model has tied (shared) parameters")


def _init_module(module: nn.Module, fn: Callable[..., None], custom: bool,
                 device: torch.device, dtype: torch.dtype) -> None:
    """Allocate the module's own meta tensors on the CPU, initialise them, cast and move them."""
    own = _own_tensors(module)
    for kind, tensors in own.items():
        for name, t in tensors.items():
            if not t.is_meta:
                raise StreamedInitUnsupported(f"{type(module).__name__}.{name} was not on meta")
            cpu = torch.empty(t.shape, dtype=t.dtype, device="cpu")
            getattr(module, kind)[name] = nn.Parameter(cpu, t.requires_grad) if kind == "_parameters" else cpu
    with _WrittenStorages() as written:
        fn(module, custom)
    for kind, tensors in own.items():
        for name in tensors:
            t = getattr(module, kind)[name]
            if t.untyped_storage().data_ptr() not in written.whole:
                raise StreamedInitUnsupported(
                    f"{type(module).__name__}.{name} is not (fully) written by _init_weights")
            moved = t.detach().to(device, dtype if t.is_floating_point() else None)
            getattr(module, kind)[name] = nn.Parameter(moved, t.requires_grad) if kind == "_parameters" else moved


def _check_no_meta_left(model: nn.Module) -> None:
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and value.is_meta:
                raise StreamedInitUnsupported(f"{name or 'model'}.{attr} stays on the meta device")


def streamed_init(build: Callable[[], nn.Module], device: str | torch.device,
                  dtype: torch.dtype) -> nn.Module:
    """``build()`` (a transformers model constructor; the CPU generator seeded by the caller)
    materialised module by module on ``device`` in ``dtype`` (floating tensors; others keep
    theirs), equal to ``build().to(device, dtype)`` run from the same generator state.

    Raises:
        StreamedInitUnsupported: see the module docstring; the generator state is then
            undefined, and the caller re-seeds it before building the model whole.
    """
    try:
        with torch.device("meta"), _ReplayRandomOnMeta():
            model = build()
    except (NotImplementedError, RuntimeError) as err:  # e.g. .item() on a meta tensor
        raise StreamedInitUnsupported(f"the constructor cannot run on the meta device: {err}") from err
    if not isinstance(model, PreTrainedModel):
        raise StreamedInitUnsupported(f"{type(model).__name__} is not a transformers model")
    _check_flat_and_untied(model)
    custom = model.is_custom_code()
    with torch.no_grad(), hf_init.guard_torch_init_functions():
        for module, fn in _init_order(model):
            _init_module(module, fn, custom, torch.device(device), dtype)
    _check_no_meta_left(model)
    return model
