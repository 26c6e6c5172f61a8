"""Tiny random-weight TEXT checkpoints (OPT, the paper's family, and Llama) for tests and smoke
runs of ``mm-align diff-erank``. Never use them for real measurements.

The "trained" weights are a seeded random init with one change: the token embeddings are
collapsed to a low rank, so the checkpoint's last hidden states are visibly lower-rank than
those of a fresh random init (what training does to real models). Its Diff-eRank is then
positive, as the paper reports for trained LLMs, while still costing nothing to build.

    mm-align tiny opt|llama DIR [--seed N]
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModel,
    LlamaConfig,
    OPTConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

from mm_align.adapters.tiny import build_tiny_tokenizer, save_tiny
from mm_align.constants import TEXT_FAMILIES, TINY_TEXT_SEED

__all__ = ["TEXT_FAMILIES", "build_tiny_text_model"]


_HIDDEN = 64
_LAYERS = 2
_MAX_POSITIONS = 512


def _tokenizer(family: str) -> PreTrainedTokenizerFast:
    if family == "opt":
        # OPT's real tokenizer prepends "</s>" (id 2 there) as its BOS; ids here are 0, 1, 2.
        return build_tiny_tokenizer(
            ["<pad>", "</s>", "<unk>"],
            bos_token="</s>",
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
        )
    # Llama has no pad token; the pipeline pads with EOS under an attention mask.
    return build_tiny_tokenizer(
        ["<unk>", "<s>", "</s>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _config(family: str, tok: PreTrainedTokenizerFast) -> PretrainedConfig:
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    if family == "opt":
        return OPTConfig(
            vocab_size=len(tok),
            hidden_size=_HIDDEN,
            word_embed_proj_dim=_HIDDEN,
            num_hidden_layers=_LAYERS,
            num_attention_heads=4,
            ffn_dim=4 * _HIDDEN,
            max_position_embeddings=_MAX_POSITIONS,
            pad_token_id=tok.pad_token_id,
            **ids,
        )
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=_HIDDEN,
        intermediate_size=4 * _HIDDEN,
        num_hidden_layers=_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=_MAX_POSITIONS,
        **ids,
    )


def build_tiny_text_model(
    directory: str | Path, family: str = "opt", *, seed: int = TINY_TEXT_SEED, embedding_rank: int = 8
) -> Path:
    """Build and save a tiny text model (hidden size 64, 2 layers) with its tokenizer.

    Args:
        directory: where ``save_pretrained`` writes model and tokenizer (loadable with
            ``AutoModel`` / ``AutoTokenizer.from_pretrained``).
        family: one of :data:`TEXT_FAMILIES`.
        seed: seed of the random "trained" weights; keep it away from the seed the
            pipeline uses for its untrained model, or both would start identical.
        embedding_rank: rank the token embeddings are collapsed to (see the module doc).

    Returns:
        ``directory`` as a Path.
    """
    if family not in TEXT_FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(TEXT_FAMILIES)}")
    tok = _tokenizer(family)
    config = _config(family, tok)
    with torch.random.fork_rng(devices=[]):  # CPU init: leave the caller's RNG streams alone
        torch.default_generator.manual_seed(seed)
        model = AutoModel.from_config(config)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        u, s, vh = torch.linalg.svd(emb, full_matrices=False)
        emb.copy_((u[:, :embedding_rank] * s[:embedding_rank]) @ vh[:embedding_rank])
    return save_tiny(model, tok, directory)
