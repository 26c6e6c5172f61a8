"""Text LLMs (``AutoModel``), for the paper's single-modal Diff-eRank.

The representation of a text is the base model's last hidden state at every token (the
official code's ``AutoModel(...)(input_ids)[0]``: after the final norm, and after OPT's
``project_out`` where a checkpoint has one), read by a hook on the model's output. Texts keep
the tokenizer's own special tokens (e.g. OPT's BOS) and are truncated to ``max_length``
tokens, as in the official script. Batches are right padded by the VLM adapters' collate
under an attention mask, so the batch size does not change results. The untrained model M0
comes from the same seeded initialisation as the VLM baselines
(:func:`~mm_align.adapters.modules.seeded_init`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from mm_align.adapters.batching import collate
from mm_align.adapters.modules import (
    DTYPE_KWARG,
    HUB_KWARGS,
    probe_module,
    resolve_dtype,
    seeded_init,
)
from mm_align.capture import Tap, capture, input_of, output_of

__all__ = ["TextAdapter"]

# from_pretrained arguments that pick which files of a checkpoint are read: the tokenizer
# and the config must be read from the same ones as the weights.
FILE_KWARGS = ("gguf_file", "subfolder")


class TextAdapter:
    """A text LLM and its tokenizer.

    Args:
        model: an ``AutoModel`` (no LM head needed).
        tokenizer: its tokenizer; a missing pad token is set to EOS (padded positions are
            masked out and never measured, so which id fills them does not matter).
        max_length: texts are truncated to this many tokens, special tokens included.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, max_length: int = 2048) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else tokenizer.eos_token_id or tokenizer.unk_token_id or 0)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        max_length: int = 2048,
        **hf_kwargs: Any,
    ) -> TextAdapter:
        """Load tokenizer and model with ``AutoTokenizer`` / ``AutoModel.from_pretrained``;
        ``hf_kwargs`` go to the model (the hub ones and ``gguf_file`` to the tokenizer too).
        ``trust_remote_code`` is False unless given: a checkpoint that ships code is refused
        instead of transformers asking y/N on the terminal."""
        hf_kwargs = {"trust_remote_code": False, **hf_kwargs}
        shared = {key: hf_kwargs[key] for key in (*HUB_KWARGS, *FILE_KWARGS) if key in hf_kwargs}
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, **shared)
        model = AutoModel.from_pretrained(path_or_id, **{DTYPE_KWARG: resolve_dtype(dtype)}, **hf_kwargs)
        return cls(model.to(device), tokenizer, max_length=max_length)

    def untrained(self, seed: int) -> TextAdapter:
        """The same architecture randomly initialised (``AutoModel.from_config`` with the seed,
        see :func:`seeded_init`), on this model's device and in its dtype."""
        fresh = seeded_init(AutoModel.from_config, self.model.config, seed)
        fresh.to(device=self.device, dtype=self.dtype)
        return type(self)(fresh, self.tokenizer, max_length=self.max_length)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def config(self) -> Any:
        return self.model.config

    def count_tokens(self, text: str) -> tuple[int, bool]:
        """``(tokens besides special ones, whether truncation cuts the text)``; tokenises at
        most one token past ``max_length``, so a very long text costs little."""
        enc = self.tokenizer(
            text, truncation=True, max_length=self.max_length + 1, return_special_tokens_mask=True
        )
        content = len(enc["input_ids"]) - sum(enc["special_tokens_mask"])
        return content, len(enc["input_ids"]) > self.max_length

    def _encode(self, text: str) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: enc[k] for k in ("input_ids", "attention_mask")}

    def represent_batch(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Each text's last hidden states, ``(tokens, hidden)``, real tokens only, on the
        model's device in its dtype."""
        encoded = [self._encode(text) for text in texts]
        batch = {k: v.to(self.device) for k, v in collate(encoded, self._pad_id).items()}
        with torch.inference_mode(), capture({"last": output_of(self.model)}) as got:
            self.model(**batch)
        states = got["last"]  # (B, L, hidden)
        return [states[i, : e["input_ids"].shape[1]] for i, e in enumerate(encoded)]


    # ---- hidden states at any layer (the companion paper's tools, GEOMETRY.md) ----

    @property
    def decoder_layers(self) -> Any:
        """The decoder blocks in order (``layers`` of Llama-style models, OPT's
        ``decoder.layers``)."""
        return probe_module(self.model, ("layers", "decoder.layers"), "decoder layers")

    def layer_index(self, layer: int) -> int:
        """``layer`` in the ``output_hidden_states`` convention (0 = embedding output, last =
        after the final norm), negative counted from the end, as a non-negative index."""
        n = len(self.decoder_layers) + 1
        if not -n <= layer < n:
            raise ValueError(f"layer {layer} is out of range for {n} hidden states")
        return layer % n

    def layer_tap(self, layer: int) -> Tap:
        """Where hidden state ``layer`` appears: the first block's input (0), a block's
        output, or the base model's output (the last, after the final norm and OPT's
        ``project_out``), as ``output_hidden_states`` would give it."""
        index, blocks = self.layer_index(layer), self.decoder_layers
        if index == 0:
            return input_of(blocks[0])
        return output_of(self.model if index == len(blocks) else blocks[index - 1])

    def layer_states(self, texts: Sequence[str], layer: int) -> list[torch.Tensor]:
        """Each text's hidden states at ``layer``, ``(tokens, hidden)``, real tokens only,
        on the model's device in its dtype (see :meth:`represent_batch`)."""
        encoded = [self._encode(text) for text in texts]
        batch = {k: v.to(self.device) for k, v in collate(encoded, self._pad_id).items()}
        with torch.inference_mode(), capture({"layer": self.layer_tap(layer)}) as got:
            self.model(**batch)
        return [got["layer"][i, : e["input_ids"].shape[1]] for i, e in enumerate(encoded)]
