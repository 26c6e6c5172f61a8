"""Right-padded batches of per-sample model inputs, shared by the VLM and text adapters.

Each sample is encoded on its own (batch dimension 1, unpadded), so its tokens and masks are
exact; a batch pads the per-token inputs on the right and concatenates the rest. Under causal
attention with an attention mask, right padding leaves every real token's states unchanged,
so results do not depend on the batch size (up to float round-off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["SEQUENCE_KEYS", "collate"]

SEQUENCE_KEYS = frozenset({"input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids"})
"""Per-token inputs, padded on the right; every other tensor is concatenated on dim 0."""


def collate(samples: Sequence[Mapping[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch from unpadded samples: ``(1, L_i)`` per-token tensors -> ``(B, max L_i)``,
    ``input_ids`` filled with ``pad_id`` and the other per-token inputs with 0; every other
    tensor zero-padded in its trailing dimensions to the largest sample, then concatenated."""
    length = max(int(sample["input_ids"].shape[1]) for sample in samples)
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if key in SEQUENCE_KEYS:
            fill = pad_id if key == "input_ids" else 0
            values = [F.pad(value, (0, length - value.shape[1]), value=fill) for value in values]
        else:  # tiles and pixels: zero-padded to the largest sample, as a processor pads a batch
            values = _pad_to_largest(values)
        batch[key] = torch.cat(values)
    return batch


def _pad_to_largest(values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Zero-pad every dimension but the first to the largest among ``values``."""
    shape = [max(sizes) for sizes in zip(*(value.shape[1:] for value in values))]
    padded = []
    for value in values:
        pad = [p for size, want in zip(reversed(value.shape[1:]), reversed(shape)) for p in (0, want - size)]
        padded.append(F.pad(value, pad) if any(pad) else value)
    return padded
