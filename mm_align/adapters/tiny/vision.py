"""Tiny vision towers shared by several families' tiny checkpoints: CLIP (with CLS) and SigLIP
(without), 2 layers of width 32 over 56 px images in 14 px patches (16 patches)."""

from __future__ import annotations

from transformers import CLIPVisionConfig, SiglipVisionConfig

__all__ = ["CLIP_IMAGE_SIZE", "CLIP_PATCH_SIZE", "TINY_PINPOINTS", "tiny_clip_vision", "tiny_siglip_vision"]

CLIP_IMAGE_SIZE, CLIP_PATCH_SIZE = 56, 14
# "anyres" grids of 1 x 2, 2 x 1 and 2 x 2 tiles of 56 px: every tiny image gets 3 to 5 tiles.
TINY_PINPOINTS = [[56, 112], [112, 56], [112, 112]]


def tiny_clip_vision() -> CLIPVisionConfig:
    """A 2-layer, width-32 CLIP ViT over 56 px images in 14 px patches (16 patches + CLS)."""
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=CLIP_PATCH_SIZE,
        projection_dim=32,
    )


def tiny_siglip_vision(image_size: int = CLIP_IMAGE_SIZE, patch_size: int = 14) -> SiglipVisionConfig:
    """A 2-layer, width-32 SigLIP ViT (no CLS token)."""
    return SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, patch_size=patch_size)
