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
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

__all__ = ["ProjectorFileError", "ProjectorMismatchError", "load_projector_state", "swap_projector"]

_CONNECTOR_NAMES = ("mm_projector.", "multi_modal_projector.", "merger.")


class ProjectorMismatchError(ValueError):
    """The file's tensors do not fit the model's projector (names or shapes)."""


class ProjectorFileError(ValueError):
    """The projector file cannot be read as weights: corrupt, not a state dict, or holding
    tensors that are not floating point."""


def _read_state(path: Path) -> object:
    """The object stored in a projector file; a damaged file is a ProjectorFileError."""
    from safetensors import SafetensorError

    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except SafetensorError as err:
        raise ProjectorFileError(f"{path} is not a readable safetensors file ({err})") from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, AttributeError, ImportError) as err:
        # weights_only=True: a pickle that asks for code, or a damaged one, ends here.
        raise ProjectorFileError(
            f"{path} is not a readable PyTorch state dict ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no details'})"
        ) from None
    return state["state_dict"] if isinstance(state, dict) and "state_dict" in state else state


def load_projector_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a projector file, keys relative to the connector module.

    Raises:
        FileNotFoundError: no such file.
        ProjectorFileError: the file is damaged, is not a state dict of tensors, or holds
            tensors that are not floating point (weights are; an int64 tensor is not one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"projector file not found: {path}")
    state = _read_state(path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ProjectorFileError(f"{path} does not hold a state dict of tensors")
    integral = sorted(f"{k} ({str(v.dtype).removeprefix('torch.')})"
                      for k, v in state.items() if not v.is_floating_point())
    if integral:
        raise ProjectorFileError(
            f"{path}: projector weights must be floating point, not {', '.join(integral[:3])}"
        )
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


def swap_projector(adapter: Any, path: str | Path,
                   state: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Load the projector weights in ``path`` into ``adapter.projector`` (in place);
    ``state``: the file's :func:`load_projector_state`, when it was read already (to refuse
    a bad file before the model loads).

    Returns:
        provenance of the swap: ``path``, ``sha256`` of the file, ``tensors`` count.

    Raises:
        ProjectorMismatchError: missing or unexpected tensors, or a shape mismatch; the
            model is left unchanged.
    """
    module: nn.Module = adapter.projector
    expected = module.state_dict()
    state = load_projector_state(path) if state is None else state
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
