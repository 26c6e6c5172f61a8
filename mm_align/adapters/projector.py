"""Swap the connector (projector) weights of a loaded VLM, to compare projector designs on
one vision tower and LLM.

Accepted files: safetensors, or a PyTorch state dict such as LLaVA's ``mm_projector.bin``
(read with ``torch.load(weights_only=True)``: no code in the file is ever run). Keys may
carry any prefix up to the connector's name (``model.mm_projector.``,
``multi_modal_projector.``, ``visual.merger.``, ...). Keys that still do not name the HF
module's parameters are matched by position: the i-th layer index of the checkpoint (LLaVA's
``nn.Sequential`` ``0``, ``2``) to the i-th parameterised child of the HF module
(``linear_1``, ``linear_2``), with every shape checked.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

__all__ = ["ProjectorMismatchError", "load_projector_state", "swap_projector"]

_CONNECTOR_NAMES = ("mm_projector.", "multi_modal_projector.", "merger.")


class ProjectorMismatchError(ValueError):
    """The file's tensors do not fit the model's projector (names or shapes)."""


def load_projector_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a projector file, keys relative to the connector module."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"projector file not found: {path}")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ProjectorMismatchError(f"{path} does not hold a state dict of tensors")
    relative = {}
    for key, value in state.items():
        cut = max((key.rfind(n) + len(n) for n in _CONNECTOR_NAMES if n in key), default=0)
        relative[key[cut:]] = value
    return relative


def _by_position(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """Map ``<i>.<param>`` keys to the module's parameterised children in order."""
    own = [name for name, child in module.named_children() if any(True for _ in child.parameters())]
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"(\d+)\.", k))})
    if len(indices) != len(own):
        return state
    rename = {str(i): name for i, name in zip(indices, own)}
    return {
        re.sub(r"^(\d+)\.", lambda m: rename.get(m.group(1), m.group(1)) + ".", k): v
        for k, v in state.items()
    }


def swap_projector(adapter: Any, path: str | Path) -> dict[str, Any]:
    """Load the projector weights in ``path`` into ``adapter.projector`` (in place).

    Returns:
        provenance of the swap: ``path``, ``sha256`` of the file, ``tensors`` count.

    Raises:
        ProjectorMismatchError: missing or unexpected tensors, or a shape mismatch; the
            model is left unchanged.
    """
    module: nn.Module = adapter.projector
    expected = module.state_dict()
    state = load_projector_state(path)
    if set(state) != set(expected):
        state = _by_position(state, module)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ProjectorMismatchError(
            f"{path} does not match the model's projector ({type(module).__name__}): "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}"
        )
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ProjectorMismatchError(f"{path}: shape mismatch: " + "; ".join(wrong))
    module.load_state_dict(state, strict=True)  # copies into the parameters, casting dtype
    return {
        "path": str(Path(path).resolve()),
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "tensors": len(expected),
    }
