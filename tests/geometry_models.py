"""Tiny Llama checkpoints of several widths and depths, for the companion paper's tools."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from mm_align.adapters.tiny import build_tiny_tokenizer, save_tiny
from mm_align.adapters.tiny.text import build_tiny_text_model

TEXTS = [
    "A cat sits on a wooden floor and looks at the camera.",
    "There are two people walking along a street with tall buildings and cars.",
    "A red bus is parked next to a green tree in the city centre.",
    "A cup of coffee with latte art on a saucer, seen from above.",
    "Describe the image in detail. What is in this picture?",
]


def build_llama(directory: Path, hidden: int, layers: int, seed: int = 0) -> Path:
    """A random-weight Llama causal LM (BOS-prepending tokenizer) saved to ``directory``."""
    tok = build_tiny_tokenizer(
        ["<unk>", "<s>", "</s>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return save_tiny(AutoModelForCausalLM.from_config(config), tok, directory)


def write_texts(path: Path, texts: list[str] = TEXTS) -> Path:
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


def build_families(root: Path) -> dict[str, Path]:
    """A 3-layer Llama causal LM (hidden 32) and the 2-layer tiny OPT of ``mm-align``."""
    return {"llama": build_llama(root / "llama", 32, 3),
            "opt": build_tiny_text_model(root / "opt", "opt")}
