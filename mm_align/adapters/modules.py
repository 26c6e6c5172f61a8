"""Loading helpers every adapter shares: dtypes, module probing, hub keyword arguments, and
the one seeded random re-initialisation behind every untrained baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import transformers
from packaging.version import Version
from torch import nn

__all__ = ["DTYPES", "DTYPE_KWARG", "HUB_KWARGS", "probe_module", "resolve_dtype", "seeded_init"]

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# transformers renamed from_pretrained's `torch_dtype` to `dtype` in 4.56.
DTYPE_KWARG = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
# from_pretrained kwargs that also concern the config and processor (the rest go to the model).
HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "trust_remote_code")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float32"`` / ``"bfloat16"`` / ``"float16"`` (or fp32 / bf16 / fp16) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def probe_module(root: nn.Module, paths: Sequence[str], what: str) -> nn.Module:
    """The first of the dotted attribute ``paths`` that exists under ``root``.

    Module layouts moved between transformers releases (4.5x: ``model.visual``; 5.x:
    ``model.model.visual``), so each adapter lists the candidates, newest first."""
    for path in paths:
        module: Any = root
        for name in path.split("."):
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, nn.Module):
            return module
    raise AttributeError(
        f"cannot find the {what} in {type(root).__name__}: none of {list(paths)} exists "
        f"(transformers {transformers.__version__}); this layout is not supported yet"
    )


def seeded_init(build: type[nn.Module] | Any, config: Any, seed: int) -> nn.Module:
    """A freshly initialised module ``build(config)`` (a module class, or a callable such as
    ``AutoModel.from_config``) whose weights depend on ``seed`` alone.

    Only the CPU generator draws the init, on the CPU and in float32, so any machine and any
    later dtype get the same weights; seeding that generator gives the same weights as the
    paper's ``torch.manual_seed(seed)``. The caller's RNG state is put back afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        if isinstance(build, type):
            return build(config)
        # from_config would otherwise init in the config's dtype (float16 for OPT checkpoints).
        return build(config, dtype=torch.float32)
