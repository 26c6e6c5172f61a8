"""The Qwen-VL pieces of tiny checkpoints (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5, GLM-4.1V,
InternVL, Ovis2): the toy tokenizer with Qwen's special tokens, a 2-layer Qwen text config with
M-RoPE, the config's token-id fields, the chat template and the Qwen2-VL / Qwen3-VL processors."""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

from mm_align.adapters.tiny import build_tiny_tokenizer

__all__ = [
    "QWEN_SPECIAL_TOKENS",
    "qwen2_processor",
    "qwen3_processor",
    "qwen3_vision_config",
    "qwen_chat_template",
    "qwen_text_config",
    "qwen_token_ids",
    "qwen_tokenizer",
]

# The Qwen chat template without tool branches; IMAGE is the marked image (KIND the content
# type it stands for: "audio" for a clip of sound), VIDEO the marked video clip.
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'KIND' %}IMAGE{% elif content['type'] == 'video' %}VIDEO"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_chat_template(image: str, video: str = "", kind: str = "image") -> str:
    """The Qwen chat template with ``image`` standing for each content item of type ``kind``
    (``"audio"``: a sound clip), ``video`` for each video clip."""
    return _CHAT_TEMPLATE.replace("IMAGE", image).replace("VIDEO", video).replace("KIND", kind)


QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def qwen_tokenizer() -> tuple[Any, dict[str, int]]:
    """The toy tokenizer with Qwen's special tokens, and their ids."""
    tokenizer = build_tiny_tokenizer(QWEN_SPECIAL_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}


def qwen_text_config(vocab_size: int, ids: dict[str, int], **extra: Any) -> dict[str, Any]:
    """A 2-layer, width-64 Qwen text config with M-RoPE (head_dim 16: sections 2, 3, 3)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 1024,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        **extra,
    }


def qwen_token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The config's token-id fields for the Qwen special tokens."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def qwen2_processor(processor_class: type, tokenizer: Any) -> Any:
    """A Qwen2-VL-style processor: images and video frames of at most 112 x 112 px in 14 px
    patches (at most 64 patches, 16 image tokens; a clip: up to 16 tokens per 2 frames)."""
    return _processor(processor_class, Qwen2VLVideoProcessor, tokenizer, patch_size=14, frames_per_clip=1)


def qwen3_vision_config() -> dict:
    """A 2-block, width-32 Qwen3 ViT over 16 px patches, DeepStack from block 0."""
    return {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
            "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}


def qwen3_processor(tokenizer: Any) -> Qwen3VLProcessor:
    """Images of at most 128 x 128 px: at most 64 patches, 16 image tokens; clips of up to 16
    such frames (Qwen3-VL bounds the pixels of a whole clip, not of a frame)."""
    return _processor(Qwen3VLProcessor, Qwen3VLVideoProcessor, tokenizer, patch_size=16, frames_per_clip=16)


def _processor(processor_class: type, video_class: type, tokenizer: Any, patch_size: int,
               frames_per_clip: int) -> Any:
    """Images and video frames of 4 x 4 to 8 x 8 patches (merged 2 x 2: 4 to 16 tokens), Qwen's
    template; ``frames_per_clip``: how many frames the video processor's pixel cap covers."""
    sizes = {"patch_size": patch_size, "merge_size": 2, "temporal_patch_size": 2}
    low, high = (4 * patch_size) ** 2, (8 * patch_size) ** 2
    return processor_class(
        image_processor=Qwen2VLImageProcessor(min_pixels=low, max_pixels=high, **sizes),
        video_processor=video_class(size={"shortest_edge": low, "longest_edge": high * frames_per_clip}, **sizes),
        tokenizer=tokenizer,
        chat_template=qwen_chat_template("<|vision_start|><|image_pad|><|vision_end|>", QWEN_VIDEO),
    )


QWEN_VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"
"""How a clip stands in a Qwen prompt, before the processor expands it."""
