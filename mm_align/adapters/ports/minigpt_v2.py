"""MiniGPT-v2 (Vision-CAIR, not in transformers) rebuilt from its official files: EVA ViT-g/14
at 448 px -> ``ln_vision`` -> every 4 adjacent patch rows concatenated -> one linear layer
``llama_proj`` -> LLaMA-2-7B-chat with LoRA (r 64, alpha 16) on the attention's q and v
projections, merged into the weights. The adapter is :mod:`mm_align.adapters.minigpt_v2`.

The checkpoint folder (its ``config.json``, read by :class:`MiniGPTv2Config`) names the three
official files, relative to the folder or absolute::

    {"model_type": "minigpt_v2", "eva_vit": "eva_vit_g.pth", "llama": "Llama-2-7b-chat-hf",
     "checkpoint": "minigptv2_checkpoint.pth"}

``eva_vit`` is LAVIS's EVA ViT-g state dict, ``llama`` a transformers Llama folder (weights and
tokenizer), ``checkpoint`` the MiniGPT-v2 training checkpoint (``{"model": state_dict}`` with
``llama_proj.*`` and the LoRA tensors; the frozen tower, ``ln_vision`` and LLM are not in it).
Importing this module registers the config with ``AutoConfig`` and the processor with
``AutoProcessor``, so such a folder loads like any transformers checkpoint.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from transformers import (
    AutoConfig,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedConfig,
)

from mm_align.adapters.batching import collate
from mm_align.adapters.modules import DTYPE_KWARG, resolve_dtype
from mm_align.adapters.ports.eva_vit import EvaViT, EvaViTConfig, FP32LayerNorm, interpolate_pos_embed

__all__ = [
    "LORA_TARGETS",
    "MERGE",
    "CheckpointKeyError",
    "MiniGPTv2",
    "MiniGPTv2Config",
    "MiniGPTv2Processor",
    "load_eva",
    "merge_lora",
    "read_state",
]

MERGE = 4
"""Adjacent patch rows (raster order) concatenated into one image token (``encode_img``)."""
LORA_TARGETS = ("q_proj", "v_proj")
# The official training code's key of a LoRA factor (peft 0.2.0 in its environment.yml; later
# peft versions insert the adapter name ".default", accepted as the same tensor).
_LAYER_PREFIX = r"llama_model\.base_model\.model\.model\.layers\.(\d+)\.self_attn\."
_LORA_KEY = re.compile(_LAYER_PREFIX + r"(q_proj|v_proj)\.lora_([AB])(?:\.default)?\.weight")
# A deterministic RoPE buffer, persistent in transformers 4.30's Llama (the official pin): nothing to load.
_ROPE_BUFFER = re.compile(_LAYER_PREFIX + r"rotary_emb\.inv_freq")
# EVA-CLIP parts a file may carry that the official tower does not build (BLIP-2 drops the last
# block, the final norm and the head): `create_eva_vit_g` loads with strict=False and leaves them
# out silently; this loader leaves them out with a warning naming them.
_EVA_EXTRA = re.compile(r"(blocks\.(\d+)|norm|fc_norm|head)\.")
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class CheckpointKeyError(KeyError):
    """A weight file's tensors do not match the model: names the missing or unexpected keys."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class MiniGPTv2Config(PreTrainedConfig):
    """The checkpoint folder's ``config.json``: the three files and the tower's sizes (defaults:
    the official MiniGPT-v2, ``minigptv2_eval.yaml`` and ``create_eva_vit_g``)."""

    model_type = "minigpt_v2"

    def __init__(
        self,
        eva_vit: str = "eva_vit_g.pth",
        llama: str = "Llama-2-7b-chat-hf",
        checkpoint: str = "minigptv2_checkpoint.pth",
        image_size: int = 448,
        patch_size: int = 14,
        vision_width: int = 1408,
        vision_depth: int = 39,
        vision_heads: int = 16,
        vision_mlp_width: int = 6144,
        lora_r: int = 64,
        lora_alpha: float = 16,
        **kwargs: Any,
    ) -> None:
        self.eva_vit, self.llama, self.checkpoint = eva_vit, llama, checkpoint
        self.image_size, self.patch_size = image_size, patch_size
        self.vision_width, self.vision_depth = vision_width, vision_depth
        self.vision_heads, self.vision_mlp_width = vision_heads, vision_mlp_width
        self.lora_r, self.lora_alpha = lora_r, lora_alpha
        super().__init__(**kwargs)

    def vision_config(self) -> EvaViTConfig:
        return EvaViTConfig(self.image_size, self.patch_size, self.vision_width, self.vision_depth,
                            self.vision_heads, self.vision_mlp_width)

    def num_image_tokens(self) -> int:
        return self.vision_config().grid ** 2 // MERGE

    def file(self, folder: str | Path, name: str) -> Path:
        """The path of file ``name`` (``"eva_vit"``, ``"llama"``, ``"checkpoint"``) of ``folder``."""
        path = Path(folder) / getattr(self, name)
        if not path.exists():
            raise FileNotFoundError(f"MiniGPT-v2 folder {folder}: {name} file {path} does not exist")
        return path


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth`` file (``torch.load(weights_only=True)``: no code in it runs),
    unwrapped from the training checkpoint's ``{"model": ...}``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointKeyError(f"{path} does not hold a state dict of tensors")
    return state


def _raise_on_keys(path: Path, missing: Sequence[str], unexpected: Sequence[str]) -> None:
    if missing or unexpected:
        raise CheckpointKeyError(
            f"{path}: missing keys {sorted(missing) or 'none'}, unexpected keys {sorted(unexpected) or 'none'}"
        )


def _check_keys(path: Path, expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> None:
    _raise_on_keys(path, list(set(expected) - set(got)), list(set(got) - set(expected)))
    wrong = [f"{k}: file {tuple(got[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if got[k].shape != v.shape]
    if wrong:
        raise CheckpointKeyError(f"{path}: shape mismatch: " + "; ".join(wrong))


def load_eva(tower: EvaViT, path: Path) -> None:
    """Load LAVIS's EVA ViT-g state dict into ``tower``: position embeddings resized to the
    tower's grid as the official loader does; blocks past ``depth`` and EVA-CLIP's head / final
    norm dropped with a warning (the official tower has none); anything else must match exactly."""
    state = read_state(path)
    if "pos_embed" in state:
        state["pos_embed"] = interpolate_pos_embed(state["pos_embed"], tower.config.grid)
    depth = tower.config.depth
    extra = [k for k in state if (m := _EVA_EXTRA.match(k)) and (m.group(2) is None or int(m.group(2)) >= depth)]
    if extra:
        warnings.warn(f"{path}: ignoring {len(extra)} tensors the official {depth}-block tower "
                      f"does not have ({extra[0]} ... {extra[-1]})", stacklevel=2)
        state = {k: v for k, v in state.items() if k not in extra}
    _check_keys(path, tower.state_dict(), state)
    tower.load_state_dict(state)


def _lora_pairs(
    path: Path, state: Mapping[str, torch.Tensor], layers: int
) -> dict[tuple[int, str], dict[str, torch.Tensor]]:
    """(layer, target) -> {"A": (r, in), "B": (out, r)}; every q/v projection of every layer."""
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unexpected = []
    for key, value in state.items():
        if (m := _LORA_KEY.fullmatch(key)) and int(m.group(1)) < layers:
            pairs.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = value
        elif key not in ("llama_proj.weight", "llama_proj.bias") and not _ROPE_BUFFER.fullmatch(key):
            unexpected.append(key)
    missing = [f"llama_model.base_model.model.model.layers.{i}.self_attn.{t}.lora_{f}.weight"
               for i in range(layers) for t in LORA_TARGETS for f in "AB" if f not in pairs.get((i, t), {})]
    missing += [k for k in ("llama_proj.weight", "llama_proj.bias") if k not in state]
    _raise_on_keys(path, missing, unexpected)
    return pairs


def merge_lora(linear: nn.Linear, a: torch.Tensor, b: torch.Tensor, scaling: float) -> None:
    """``W += scaling * B @ A`` in float32, stored back in ``W``'s dtype (peft's merge)."""
    if a.shape[1] != linear.in_features or b.shape != (linear.out_features, a.shape[0]):
        raise CheckpointKeyError(f"LoRA factors {tuple(b.shape)} @ {tuple(a.shape)} do not fit a "
                                 f"{linear.out_features}x{linear.in_features} projection")
    with torch.no_grad():
        merged = linear.weight.float() + scaling * (b.float() @ a.float())
        linear.weight.copy_(merged.to(linear.weight.dtype))


class MiniGPTv2(nn.Module):
    """The model: ``visual_encoder`` (EVA ViT), ``ln_vision``, ``llama_proj``, ``llama_model``
    (a transformers ``LlamaForCausalLM`` with the LoRA merged into its weights)."""

    def __init__(self, config: MiniGPTv2Config, llama_model: LlamaForCausalLM) -> None:
        super().__init__()
        self.config = config
        self.name_or_path = ""
        self.visual_encoder = EvaViT(config.vision_config())
        # Frozen at its initialisation (weight 1, bias 0) in the official training: not in any file.
        self.ln_vision = FP32LayerNorm(config.vision_width)
        self.llama_proj = nn.Linear(MERGE * config.vision_width, llama_model.config.hidden_size)
        self.llama_model = llama_model
        config.text_config = llama_model.config
        # One past the vocabulary: never a real token, so image positions are unambiguous.
        config.image_token_id = llama_model.config.vocab_size

    @property
    def device(self) -> torch.device:
        return self.llama_proj.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llama_proj.weight.dtype

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` -> image tokens ``(B, grid**2 / 4, d_llm)``, as ``encode_img``."""
        rows = self.ln_vision(self.visual_encoder(pixel_values))[:, 1:]
        b, n, width = rows.shape
        return self.llama_proj(rows.reshape(b, n // MERGE, MERGE * width))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, **llm_kwargs: Any) -> Any:
        """The Llama's output for ``input_ids`` ``(B, L)`` whose ``image_token_id`` positions take
        the image tokens of ``pixel_values`` (one image per sample, in order)."""
        is_image = input_ids == self.config.image_token_id
        embeds = self.llama_model.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
        if pixel_values is not None:
            features = self.encode_image(pixel_values.to(self.dtype))
            if features.shape[0] * features.shape[1] != int(is_image.sum()):
                raise ValueError(
                    f"{int(is_image.sum())} image positions for {tuple(features.shape[:2])} image tokens"
                )
            embeds = embeds.masked_scatter(is_image.unsqueeze(-1), features.to(embeds.dtype))
        elif bool(is_image.any()):
            raise ValueError("input_ids hold image positions but no pixel_values were given")
        return self.llama_model(inputs_embeds=embeds, attention_mask=attention_mask, **llm_kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, dtype: str | torch.dtype = "float32",
                        config: MiniGPTv2Config | None = None, **llama_kwargs: Any) -> MiniGPTv2:
        """Build from a checkpoint folder (see the module doc): the Llama with
        ``LlamaForCausalLM.from_pretrained`` (``llama_kwargs`` go there), the EVA tower and
        ``llama_proj`` from their files, the LoRA merged with ``lora_alpha / r``. Every missing
        or unexpected tensor raises :class:`CheckpointKeyError` naming it."""
        if llama_kwargs.pop("device_map", None) is not None:
            raise ValueError("MiniGPT-v2 does not support device_map; use device=")
        config = config or MiniGPTv2Config.from_pretrained(folder)
        dtype = resolve_dtype(llama_kwargs.pop("torch_dtype", dtype))  # transformers < 4.56 names it so
        llama_dir = config.file(folder, "llama")
        llama = LlamaForCausalLM.from_pretrained(llama_dir, **{DTYPE_KWARG: dtype}, **llama_kwargs)
        model = cls(config, llama)
        model.name_or_path = str(folder)
        load_eva(model.visual_encoder, config.file(folder, "eva_vit"))
        model.load_checkpoint(config.file(folder, "checkpoint"))
        return model.to(dtype).eval()

    def load_checkpoint(self, path: Path) -> None:
        """``llama_proj`` from the MiniGPT-v2 checkpoint and its LoRA merged into the Llama."""
        state = read_state(path)
        layers = self.llama_model.model.layers
        pairs = _lora_pairs(path, state, len(layers))
        proj = {name: state[f"llama_proj.{name}"] for name in ("weight", "bias")}
        _check_keys(path, self.llama_proj.state_dict(), proj)  # the shapes: the names are checked
        rank = {factors["A"].shape[0] for factors in pairs.values()}
        if rank != {self.config.lora_r}:
            raise CheckpointKeyError(
                f"{path}: LoRA rank {sorted(rank)} but config.json says lora_r={self.config.lora_r}"
            )
        self.llama_proj.load_state_dict(proj)
        for (layer, target), factors in pairs.items():
            merge_lora(getattr(layers[layer].self_attn, target), factors["A"], factors["B"],
                       self.config.lora_alpha / self.config.lora_r)


class MiniGPTv2Processor:
    """Images and prompts to model inputs, as the official code prepares them.

    Pixels: ``Resize((S, S), bicubic)`` of the RGB image, ``ToTensor``, CLIP mean / std
    (``blip2_image_eval``). Prompts: split at ``<ImageHere>``, every piece tokenized on its own,
    BOS on the first only (``get_context_emb``), each placeholder replaced by
    ``num_image_tokens`` copies of ``image_token_id``. ``offset_mapping`` counts characters as
    transformers' processors do, as if the placeholder had been repeated once per image token.
    """

    image_token = "<ImageHere>"

    def __init__(self, tokenizer: Any, *, image_token_id: int, image_size: int, num_image_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.image_token_id = image_token_id
        self.num_image_tokens = num_image_tokens
        self.transform = transforms.Compose([
            transforms.Resize((image_size, image_size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(_CLIP_MEAN, _CLIP_STD),
        ])

    @classmethod
    def from_pretrained(cls, folder: str | Path, **_: Any) -> MiniGPTv2Processor:
        """The processor of a checkpoint folder: the tokenizer of its Llama folder."""
        config = MiniGPTv2Config.from_pretrained(folder)
        llama = config.file(folder, "llama")
        return cls(
            AutoTokenizer.from_pretrained(llama),
            image_token_id=LlamaConfig.from_pretrained(llama).vocab_size,  # as MiniGPTv2 sets it
            image_size=config.image_size,
            num_image_tokens=config.num_image_tokens(),
        )

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], tokenize: bool = False,
                            return_dict: bool = False, **_: Any) -> Any:
        """MiniGPT-v2's prompt (``prompt_template`` and ``prepare_texts``): per user turn
        ``[INST] <Img><ImageHere></Img> {text} [/INST]`` (no image: ``[INST] {text} [/INST]``).
        ``tokenize=True``: the processor's output for that prompt and the loaded images of the
        messages' ``{"type": "image", "image": ...}`` parts (``return_dict``: all of it, else
        the ``input_ids``), as transformers' processors do."""
        turns = []
        images = []
        for message in messages:
            if message["role"] != "user":
                raise ValueError(f"only user turns are supported, not {message['role']!r}")
            content = message["content"]
            images += [part.get("image") for part in content if part["type"] == "image"]
            text = " ".join(part["text"] for part in content if part["type"] == "text")
            turns.append(f"[INST] {'<Img><ImageHere></Img> ' * sum(part['type'] == 'image' for part in content)}"
                         f"{text} [/INST]")
        prompt = "".join(turns)
        if not tokenize:
            return prompt
        if any(image is None for image in images):
            raise ValueError("tokenize=True needs each image part to carry its loaded image ('image': ...)")
        encoded = self(text=prompt, images=images)
        return encoded if return_dict else encoded["input_ids"]

    def _tokenize(self, prompt: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of one prompt (see the class doc)."""
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        cursor, width = 0, len(self.image_token)
        for index, piece in enumerate(prompt.split(self.image_token)):
            if index:
                ids += [self.image_token_id] * self.num_image_tokens
                offsets += [(cursor + k * width, cursor + (k + 1) * width) for k in range(self.num_image_tokens)]
                cursor += self.num_image_tokens * width
            encoded = self.tokenizer(piece, add_special_tokens=index == 0, return_offsets_mapping=True)
            ids += encoded["input_ids"]
            offsets += [(cursor + start, cursor + end) for start, end in encoded["offset_mapping"]]
            cursor += len(piece)
        return ids, offsets

    def _pixels(self, image: Any) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            image = transforms.functional.to_pil_image(image)
        elif not isinstance(image, Image.Image):
            image = Image.fromarray(image)
        return self.transform(image.convert("RGB"))

    def __call__(self, text: str | Sequence[str], images: Sequence[Any] | None = None,
                 return_offsets_mapping: bool = False, **_: Any) -> BatchFeature:
        """``input_ids`` / ``attention_mask`` ``(B, L)`` (right-padded), ``pixel_values``
        ``(n_images, 3, S, S)`` when there are images, ``offset_mapping`` ``(B, L, 2)`` on request."""
        texts = [text] if isinstance(text, str) else list(text)
        images = list(images or [])
        placeholders = sum(t.count(self.image_token) for t in texts)
        if placeholders != len(images):
            raise ValueError(f"{placeholders} {self.image_token} placeholders but {len(images)} images")
        encoded = [self._tokenize(t) for t in texts]
        rows = [{"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
                for ids, _ in encoded]
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad  # padding is masked out: any id will do
        data: dict[str, torch.Tensor] = collate(rows, int(pad or 0))
        if images:
            data["pixel_values"] = torch.stack([self._pixels(image) for image in images])
        if return_offsets_mapping:
            length = data["input_ids"].shape[1]
            data["offset_mapping"] = torch.tensor([o + [(0, 0)] * (length - len(o)) for _, o in encoded])
        return BatchFeature(data)


AutoConfig.register(MiniGPTv2Config.model_type, MiniGPTv2Config, exist_ok=True)
AutoProcessor.register(MiniGPTv2Config, MiniGPTv2Processor, exist_ok=True)
