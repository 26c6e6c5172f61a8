"""Parameter counts of checkpoints, read without loading their weights.

A local folder with ``*.safetensors`` files is counted from their JSON headers (the sum of
``prod(shape)`` of every stored tensor: tied weights are stored once, so they count once).
Anything else (``.bin`` weights, a hub id in the local cache) is counted on a model built on
the ``meta`` device from its config (``AutoModelForCausalLM``, else ``AutoModel``): no memory
is allocated, and ``parameters()`` yields tied weights once.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

__all__ = ["count_parameters", "safetensors_numel"]

_HEADER_LIMIT = 100 << 20  # a header longer than 100 MiB is not a safetensors header


def safetensors_numel(path: str | Path) -> int:
    """Elements of every tensor in one ``.safetensors`` file, from its header only.

    Raises:
        ValueError: the file is not a safetensors file.
    """
    with Path(path).open("rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > _HEADER_LIMIT:
            raise ValueError(f"{path}: not a safetensors file (header of {size} bytes)")
        header = json.loads(fh.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _meta_count(name_or_path: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(name_or_path)
    with torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(config)
        except ValueError:  # no causal-LM class for this config: the base model
            model = AutoModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def count_parameters(name_or_path: str | Path) -> dict[str, Any]:
    """``{"parameters": total count, "source": "safetensors" | "meta"}`` of a checkpoint
    folder or hub id (see the module doc)."""
    root = Path(name_or_path)
    files = sorted(root.glob("*.safetensors")) if root.is_dir() else []
    if files:
        return {"parameters": sum(safetensors_numel(f) for f in files), "source": "safetensors"}
    return {"parameters": _meta_count(str(name_or_path)), "source": "meta"}
