"""mm_align.capture: hooks copy what modules return or receive, and always go away."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mm_align.capture import capture, input_of, output_of


class _TupleOut(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, x * 3


class _ModelOut(nn.Module):
    def forward(self, x: torch.Tensor) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(last_hidden_state=x + 1, pooler_output=x.mean(0))


@pytest.fixture
def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))


def test_output_and_input_are_captured(net: nn.Sequential) -> None:
    x = torch.randn(5, 4)
    with capture({"first": net[0], "relu_in": input_of(net[1]), "last": output_of(net[2])}) as got:
        y = net(x)
    torch.testing.assert_close(got["first"], net[0](x))
    torch.testing.assert_close(got["relu_in"], net[0](x))
    torch.testing.assert_close(got["last"], y)
    assert set(got) == {"first", "relu_in", "last"}


def test_input_passed_by_keyword() -> None:
    class Caller(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(input=x * 5)

    model, x = Caller(), torch.ones(2, 2)
    with capture({"in": input_of(model.inner)}) as got:
        model(x)
    torch.testing.assert_close(got["in"], x * 5)


def test_hooks_removed_after_exit(net: nn.Sequential, hook_count: Callable[[nn.Module], int]) -> None:
    before = hook_count(net)
    with capture({"a": net[0], "b": input_of(net[2])}):
        assert hook_count(net) == before + 2
        net(torch.randn(1, 4))
    assert hook_count(net) == before


def test_hooks_removed_after_exception(net: nn.Sequential, hook_count: Callable[[nn.Module], int]) -> None:
    before = hook_count(net)
    with pytest.raises(RuntimeError, match="boom"), capture({"a": net[0], "b": input_of(net[2])}):
        net(torch.randn(1, 4))
        raise RuntimeError("boom")
    assert hook_count(net) == before
    # A failing forward pass (wrong input width) as well.
    with pytest.raises(RuntimeError), capture({"a": net[2]}):
        net(torch.randn(1, 7))
    assert hook_count(net) == before


def test_tuple_and_model_output() -> None:
    x = torch.arange(6.0).reshape(3, 2)
    tuple_mod, output_mod = _TupleOut(), _ModelOut()
    pooled = output_of(output_mod, pick=lambda out: out.pooler_output)
    with capture({"tuple": tuple_mod, "hidden": output_mod, "pooled": pooled}) as got:
        tuple_mod(x)
        output_mod(x)
    torch.testing.assert_close(got["tuple"], x * 2)  # first element of a tuple
    torch.testing.assert_close(got["hidden"], x + 1)  # last_hidden_state of a ModelOutput
    torch.testing.assert_close(got["pooled"], x.mean(0))


def test_capture_is_a_detached_copy() -> None:
    layer = nn.Linear(3, 3)
    x = torch.randn(2, 3, requires_grad=True)
    with capture({"out": output_of(layer), "in": input_of(layer)}) as got:
        y = layer(x)
    snapshot = y.detach().clone()
    with torch.no_grad():
        y.mul_(0)
        x.add_(100)
    torch.testing.assert_close(got["out"], snapshot)
    assert not got["out"].requires_grad
    assert not torch.equal(got["in"], x)


def test_repeated_calls_are_kept_and_not_ambiguous(net: nn.Sequential) -> None:
    with capture({"a": net[0]}) as got:
        net(torch.randn(1, 4))
        net(torch.randn(2, 4))
    assert [c.shape[0] for c in got.calls("a")] == [1, 2]
    with pytest.raises(KeyError, match="2 times"):
        got["a"]


def test_never_called_tap_is_an_error(net: nn.Sequential) -> None:
    with capture({"a": net[0]}) as got:
        pass
    with pytest.raises(KeyError, match="0 times"):
        got["a"]
