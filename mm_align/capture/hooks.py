"""Copy what chosen modules return (or receive) during a forward pass.

>>> with capture({"proj": output_of(model.proj), "merger_in": input_of(model.merger)}) as got:
...     model(**inputs)
>>> got["proj"]        # a detached copy, safe to keep after the forward pass

Hooks are registered on entry and removed on exit, also when the body raises, so a model is
never left with stray hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["Captured", "Tap", "capture", "first_tensor", "input_of", "output_of"]


def first_tensor(value: Any) -> torch.Tensor:
    """The tensor a module "returns": the value itself, ``last_hidden_state`` of a
    ``ModelOutput``, or the first tensor of a tuple / list / mapping (searched in order)."""
    if isinstance(value, torch.Tensor):
        return value
    last = getattr(value, "last_hidden_state", None)
    if isinstance(last, torch.Tensor):
        return last
    items = tuple(value.values()) if isinstance(value, Mapping) else value
    if isinstance(items, (tuple, list)):
        for item in items:
            if isinstance(item, torch.Tensor):
                return item
    raise TypeError(f"no tensor found in a captured {type(value).__name__}")


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    # Decoder layers are called with hidden states positionally in most models, by keyword in some.
    for value in (*args, kwargs.get("hidden_states"), *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError("the module received no tensor input")


@dataclass(frozen=True)
class Tap:
    """Where to read a tensor: the output (forward hook) or the input (forward pre-hook) of
    ``module``. ``pick`` selects the tensor from the raw output (or from ``(args, kwargs)``
    for inputs); by default :func:`first_tensor` / the first tensor argument."""

    module: nn.Module
    at: Literal["output", "input"] = "output"
    pick: Callable[..., torch.Tensor] | None = None


def output_of(module: nn.Module, pick: Callable[[Any], torch.Tensor] | None = None) -> Tap:
    """Tap the value ``module`` returns."""
    return Tap(module, "output", pick)


def input_of(
    module: nn.Module, pick: Callable[[tuple[Any, ...], dict[str, Any]], torch.Tensor] | None = None
) -> Tap:
    """Tap the tensor ``module`` receives (its first tensor argument unless ``pick`` says
    otherwise: ``pick(args, kwargs)``)."""
    return Tap(module, "input", pick)


class Captured(Mapping[str, torch.Tensor]):
    """Read-only view of the captured copies. ``got[name]`` is the copy from the single call of
    that tap; a tap whose module ran more than once must be read with :meth:`calls`."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._calls: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def _record(self, name: str, tensor: torch.Tensor) -> None:
        self._calls[name].append(tensor.detach().clone())

    def calls(self, name: str) -> list[torch.Tensor]:
        """Copies from every call of the tap's module, in call order."""
        return list(self._calls[name])

    def __getitem__(self, name: str) -> torch.Tensor:
        calls = self._calls[name]
        if len(calls) != 1:
            raise KeyError(
                f"tap {name!r} was hit {len(calls)} times; expected exactly once (use .calls())"
            )
        return calls[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._calls)

    def __len__(self) -> int:
        return len(self._calls)


@contextmanager
def capture(taps: Mapping[str, Tap | nn.Module]) -> Iterator[Captured]:
    """Register one hook per tap (a bare module means its output), yield a :class:`Captured`
    that fills up while the body runs forward passes, and remove every hook on exit."""
    normalised = {name: tap if isinstance(tap, Tap) else Tap(tap) for name, tap in taps.items()}
    got = Captured(tuple(normalised))
    handles = []
    try:
        for name, tap in normalised.items():
            if tap.at == "output":
                pick_out = tap.pick or first_tensor

                def hook(_module, _args, output, *, _name=name, _pick=pick_out) -> None:
                    got._record(_name, _pick(output))

                handles.append(tap.module.register_forward_hook(hook))
            elif tap.at == "input":
                pick_in = tap.pick or _first_input

                def pre_hook(_module, args, kwargs, *, _name=name, _pick=pick_in) -> None:
                    got._record(_name, _pick(args, kwargs))

                handles.append(tap.module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            else:
                raise ValueError(f"tap {name!r}: 'at' must be 'output' or 'input', not {tap.at!r}")
        yield got
    finally:
        for handle in handles:
            handle.remove()
