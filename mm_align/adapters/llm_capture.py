"""The forward passes of a VLM adapter: right-padded batches on the model's device, one pass
with hooks (:mod:`~mm_align.capture`) copying the LLM's hidden states at the requested layers
(``output_hidden_states`` is never used), and each sample's rows cut from them.

:class:`LLMCapture` is mixed into :class:`~mm_align.adapters.base.VLMAdapter`, whose
constructor finds the decoder layers and the final norm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mm_align.adapters.batching import collate
from mm_align.capture import Captured, Tap, capture, input_of, output_of

__all__ = ["LLMCapture", "layer_key", "token_states"]


class LLMCapture:
    """Batches, forward passes and LLM hooks (see the module doc)."""

    model: Any
    _decoder_layers: Any
    _final_norm: nn.Module
    _pad_id: int
    deepstack: str

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def num_hidden_states(self) -> int:
        """Decoder layers + 1: the length of ``output_hidden_states``."""
        return len(self._decoder_layers) + 1

    def _to_model(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs on the model's device; floating ones (pixels) in the model's dtype."""
        return {
            key: value.to(self.device, self.dtype if value.is_floating_point() else None)
            for key, value in inputs.items()
        }

    def _collate(self, samples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Right-padded batch of unpadded samples, on the model's device (see :func:`collate`)."""
        return self._to_model(collate(samples, self._pad_id))

    def _layer_tap(self, layer: int) -> Tap:
        """Where hidden state ``layer`` (``output_hidden_states`` convention) appears."""
        if layer == 0:
            # The input of the first decoder layer: embeddings with the image features in place.
            return input_of(self._decoder_layers[0])
        if layer == len(self._decoder_layers):
            return output_of(self._final_norm)
        if self.deepstack == "injected":
            # What the next block receives: block layer-1's output plus whatever the model adds
            # between the two (Qwen3-VL's deepstack features at the image tokens).
            return input_of(self._decoder_layers[layer])
        return output_of(self._decoder_layers[layer - 1])

    def _forward(self, batch: Mapping[str, torch.Tensor], layers: Sequence[int]) -> Captured:
        """One forward pass of ``batch`` with the LLM ``layers`` captured."""
        taps = {layer_key(layer): self._layer_tap(layer) for layer in layers}
        with torch.inference_mode(), capture(taps) as got:
            # logits_to_keep=1: the LM head runs on one position only; we never need logits.
            self.model(**batch, use_cache=False, logits_to_keep=1)
        return got


def layer_key(layer: int) -> str:
    """The capture name of hidden state ``layer``."""
    return f"llm_layer_{layer}"


def token_states(
    got: Captured, sample: int, length: int, mask: torch.Tensor, layers: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Per layer, the states of ``sample``'s tokens under ``mask`` (tokens x width), from a
    pass whose input was that sample's ``length`` tokens, right-padded."""
    out = {}
    for layer in layers:
        states = got[layer_key(layer)][sample, :length]
        # With a device_map, layers live on different GPUs: index each where it is.
        out[layer] = states[mask[: states.shape[0]].to(states.device)]
    return out
