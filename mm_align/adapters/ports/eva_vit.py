"""EVA ViT-g/14 as BLIP-2 and MiniGPT-v2 use it (LAVIS ``eva_vit_g``, Vision-CAIR's
``minigpt4/models/eva_vit.py``), with the parameter names of that code so that its state dict
(``eva_vit_g.pth``) loads one to one.

What the official model is: a CLS token and learned absolute position embeddings, then
``depth`` pre-norm blocks (LayerNorm eps 1e-6; attention with a bias on q and v but none on k;
exact-erf GELU MLP), and NO final norm (BLIP-2 drops EVA-CLIP's last block and head; the
``ln_vision`` LayerNorm that follows belongs to the model using the tower). No relative position
bias, no layer scale, no dropout at inference. timm's ``Eva`` would need key renaming and a new
dependency for these ~100 lines, so the tower is written out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EvaViT", "EvaViTConfig", "FP32LayerNorm", "interpolate_pos_embed"]


@dataclass(frozen=True)
class EvaViTConfig:
    """Sizes of the tower; the defaults are EVA ViT-g/14 at MiniGPT-v2's 448 px
    (``create_eva_vit_g``: width 1408, 39 blocks, 16 heads of 88, MLP ``int(1408 * 4.3637)``)."""

    image_size: int = 448
    patch_size: int = 14
    width: int = 1408
    depth: int = 39
    heads: int = 16
    mlp_width: int = 6144

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back, as the official ``ln_vision`` (whose
    parameters stay float32 while the tower runs in fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` has no bias, ``q_bias`` and ``v_bias`` are separate
    parameters and k has none (EVA's convention)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, width) -> (B, N, width)."""
        b, n, _ = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dim ** -0.5, as the official
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: EvaViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=1e-6)
        self.attn = Attention(config.width, config.heads)
        self.norm2 = nn.LayerNorm(config.width, eps=1e-6)
        self.mlp = Mlp(config.width, config.mlp_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, config: EvaViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, config.width, kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, (H / patch) * (W / patch), width), patches in raster order."""
        return self.proj(pixels).flatten(2).transpose(1, 2)


class EvaViT(nn.Module):
    """The tower: pixels ``(B, 3, S, S)`` -> ``(B, 1 + grid**2, width)``, CLS first.

    ``cls_token`` and ``pos_embed`` stay float32 whatever dtype the tower is cast to, as in the
    official code (its ``convert_weights_to_fp16`` converts only convolutions and linear
    layers; the position table it resized in float32 is never rounded to fp16). The patch rows,
    CLS and position table are summed in float32, then the sum takes the patch rows' dtype."""

    float32_params = ("cls_token", "pos_embed")

    def __init__(self, config: EvaViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid**2, config.width))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))

    def _apply(self, fn: Any, recurse: bool = True) -> EvaViT:
        # .to(dtype) / .half() reach parameters through _apply: keep these in float32 (moved only).
        kept = {name: getattr(self, name).data.float() for name in self.float32_params}
        super()._apply(fn, recurse)
        for name, value in kept.items():
            param = getattr(self, name)
            param.data = value.to(param.device)
        return self

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if tuple(pixels.shape[-2:]) != (size, size):
            raise ValueError(f"EVA ViT expects {size}x{size} pixels, got {tuple(pixels.shape[-2:])}")
        x = self.patch_embed(pixels)
        cls = self.cls_token.float().expand(x.shape[0], -1, -1)
        x = (torch.cat([cls, x.float()], dim=1) + self.pos_embed.float()).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return x


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Position embeddings ``(1, 1 + g**2, width)`` of another square grid resized to ``grid``
    per side as the official loader does (bicubic, ``align_corners=False``; the CLS row is kept
    as it is). Returns ``(1, 1 + grid**2, width)`` in float32 whatever the file's dtype, as the
    official ``interpolate_pos_embed`` does (``.float()`` first, never cast back)."""
    old = round((pos_embed.shape[1] - 1) ** 0.5)
    if old * old != pos_embed.shape[1] - 1:
        raise ValueError(f"pos_embed of {pos_embed.shape[1] - 1} patches is not a square grid")
    if old == grid:
        return pos_embed.float()
    width = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].float().reshape(1, old, old, width).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, width)
    return torch.cat([pos_embed[:, :1].float(), patches], dim=1)
