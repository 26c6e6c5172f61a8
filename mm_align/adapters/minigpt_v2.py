"""MiniGPT-v2 (``model_type`` ``"minigpt_v2"``, Vision-CAIR, not in transformers): the adapter
over the port in :mod:`mm_align.adapters.ports.minigpt_v2` (EVA ViT-g/14 -> ``ln_vision`` ->
4 adjacent patch rows concatenated -> ``llama_proj`` -> LLaMA-2-chat with its LoRA merged),
whose module doc describes the checkpoint folder. Importing the port registers its config with
``AutoConfig``.

Stages: ``"vision"`` = the patch rows after ``ln_vision`` without CLS (``grid**2`` rows of the
tower's width: the input of ``llama_proj`` read by a pre-hook, the 4-row concatenation undone
by a reshape); ``"projector"`` = ``llama_proj``'s output, one row per image token. Plain
prompt: BOS, the image tokens, the text; chat prompt: the official
``[INST] <Img><ImageHere></Img> {text} [/INST]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tokenizers import decoders
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from mm_align.adapters.base import VisionSplit, VLMAdapter
from mm_align.adapters.ports.eva_vit import EvaViT
from mm_align.adapters.ports.minigpt_v2 import LORA_TARGETS, MERGE, MiniGPTv2, MiniGPTv2Config
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import TINY_NOTE, build_tiny_tokenizer
from mm_align.capture import Captured, capture, input_of, output_of

__all__ = ["MiniGPTv2Adapter"]

@register("minigpt_v2")
class MiniGPTv2Adapter(VLMAdapter):
    """MiniGPT-v2 adapter; see :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks."""

    model_class = MiniGPTv2
    projector_paths = ("llama_proj",)
    text_model_paths = ("llama_model",)
    vision_views = ("patches", "merged")
    example_id = "Vision-CAIR/MiniGPT-4"  # the official files; a local folder names them

    @classmethod
    def taps(cls) -> dict[str, str]:
        return {"vision": "llama_proj input, 4-row groups undone (EVA rows after ln_vision)",
                "merged": "llama_proj input (4 adjacent rows concatenated)",
                "projector": "llama_proj output"}

    def _image_prefix(self) -> str:
        return self.image_token

    @contextmanager
    def _vision_capture(self, modality: str = "image") -> Iterator[VisionSplit]:
        taps = {"vision": input_of(self.projector), "projector": output_of(self.projector)}
        with capture(taps) as got:
            yield lambda samples: self._split_vision(got)

    def _split_vision(self, got: Captured) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # llama_proj sees (B, grid**2 / 4, 4 * width): raster-order rows concatenated 4 by 4, so
        # a reshape gives back exactly the ln_vision patch rows (the "patches" view).
        width = self.model.config.vision_width if self.vision_view == "patches" else -1
        return [(rows.reshape(-1, width) if width > 0 else rows, tokens)
                for rows, tokens in zip(got["vision"], got["projector"])]

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """The official file layout at toy size, random weights: an EVA state dict with the real
        key names (2 blocks, width 32, saved for 56 px so that loading resizes its position
        embeddings to 112 px: 64 patches, 16 image tokens), a Llama folder (2 layers, width 64,
        toy tokenizer) and a checkpoint with ``llama_proj`` and LoRA (r 4) on every q / v."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = MiniGPTv2Config(eva_vit="eva_vit_g.pth", llama="llama", checkpoint="minigptv2_checkpoint.pth",
                                 image_size=112, vision_width=32, vision_depth=2, vision_heads=2,
                                 vision_mlp_width=64, lora_r=4, lora_alpha=8, mm_align_tiny=TINY_NOTE)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tokenizer = _tiny_llama_tokenizer()
            llama = LlamaForCausalLM(LlamaConfig(
                vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=1024,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            ))
            llama.save_pretrained(directory / config.llama)
            tokenizer.save_pretrained(directory / config.llama)
            torch.save(_tiny_eva_state(config), directory / config.eva_vit)
            torch.save({"model": _tiny_checkpoint_state(config, llama.config)}, directory / config.checkpoint)
        config.save_pretrained(directory)
        return directory


def _tiny_llama_tokenizer() -> Any:
    """The toy BPE with Llama-2's special tokens, decoding like Llama's (one leading space of
    the decoded text dropped: the space a word token carries after a template)."""
    tokenizer = build_tiny_tokenizer(
        ["<unk>", "<s>", "</s>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.backend_tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
    return tokenizer


def _tiny_eva_state(config: MiniGPTv2Config) -> dict[str, torch.Tensor]:
    """Random tower weights under the official names, position embeddings for half the size."""
    tower = EvaViT(replace(config.vision_config(), image_size=config.image_size // 2))
    for name, param in tower.named_parameters():
        if name.rpartition(".")[2] in ("cls_token", "pos_embed", "q_bias", "v_bias"):  # zeros otherwise
            nn.init.normal_(param, std=0.1)
    return tower.state_dict()


def _tiny_checkpoint_state(config: MiniGPTv2Config, llama: LlamaConfig) -> dict[str, torch.Tensor]:
    """``llama_proj`` and LoRA factors under the official training checkpoint's key names."""
    proj = nn.Linear(MERGE * config.vision_width, llama.hidden_size)
    state = {"llama_proj.weight": proj.weight.detach(), "llama_proj.bias": proj.bias.detach()}
    out = {"q_proj": llama.num_attention_heads * llama.head_dim,
           "v_proj": llama.num_key_value_heads * llama.head_dim}
    for layer in range(llama.num_hidden_layers):
        for target in LORA_TARGETS:
            prefix = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{target}"
            state[f"{prefix}.lora_A.weight"] = 0.1 * torch.randn(config.lora_r, llama.hidden_size)
            state[f"{prefix}.lora_B.weight"] = 0.1 * torch.randn(out[target], config.lora_r)
    return state
