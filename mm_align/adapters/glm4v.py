"""GLM-4.1V (``model_type`` ``"glm4v"``, e.g. zai-org/GLM-4.1V-9B-Thinking): ViT -> a 2 x 2
convolution over merge groups -> patch merger MLP -> GLM-4 LLM with multimodal RoPE.

Stages: ``"vision"`` = the ViT's patch rows after its final norm (``"patches"``: one row per
patch, ``spatial_merge_size**2`` per image token) or the 2 x 2 groups as the downsampling
convolution, the connector's first learned map, sees them (``"merged"``: one row of 4x width
per image token); ``"projector"`` = what ``get_image_features`` returns. ``adapter.projector``
is the merger MLP (the weights ``--projector`` swaps). Plain prompt: ``<|begin_of_image|>``,
the image tokens, ``<|end_of_image|>``, then the text.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import (
    Glm4vConfig,
    Glm4vForConditionalGeneration,
    Glm4vImageProcessor,
    Glm4vProcessor,
    Glm4vVideoProcessor,
)

from mm_align.adapters.modules import probe_module
from mm_align.adapters.qwen_style import QwenStyleAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save, build_tiny_tokenizer
from mm_align.adapters.tiny.qwen import qwen_chat_template, qwen_text_config
from mm_align.capture import Tap, input_of, output_of

__all__ = ["Glm4vAdapter"]

_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_image|>", "<|end_of_image|>", "<|image|>",
           "<|begin_of_video|>", "<|end_of_video|>", "<|video|>")


@register("glm4v")
class Glm4vAdapter(QwenStyleAdapter):
    """GLM-4.1V adapter; see the module doc."""

    model_class = Glm4vForConditionalGeneration
    example_id = "zai-org/GLM-4.1V-9B-Thinking"
    vision_tap = "visual.post_layernorm output"
    marker_ids = ("image_start_token_id", "image_end_token_id")

    @classmethod
    def taps(cls) -> dict[str, str]:
        return {**super().taps(), "merged": "visual.downsample input (2 x 2 groups)"}

    def _visual(self, name: str) -> nn.Module:
        return probe_module(self.model, (f"model.visual.{name}", f"visual.{name}"), f"vision {name}")

    def _patches_tap(self) -> Tap:
        return output_of(self._visual("post_layernorm"))

    def _merged_tap(self) -> Tap:
        # The convolution receives (groups, width, 2, 2): one group per image token.
        return input_of(self._visual("downsample"), pick=lambda args, kwargs: args[0].flatten(1))

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """ViT (2 blocks, width 32, 14 px patches, images of at most 112 x 112 px) + GLM-4
        (2 layers, width 64). Randomly initialised."""
        tokenizer = build_tiny_tokenizer(_TOKENS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _TOKENS}
        text = qwen_text_config(len(tokenizer), ids, rope_parameters={
            "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2], "partial_rotary_factor": 0.5})
        config = Glm4vConfig(
            text_config=text,
            vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                           "out_hidden_size": 64, "image_size": 56, "patch_size": 14, "spatial_merge_size": 2,
                           "temporal_patch_size": 2},
            image_token_id=ids["<|image|>"],
            video_token_id=ids["<|video|>"],
            image_start_token_id=ids["<|begin_of_image|>"],
            image_end_token_id=ids["<|end_of_image|>"],
            video_start_token_id=ids["<|begin_of_video|>"],
            video_end_token_id=ids["<|end_of_video|>"],
        )
        sizes = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
        processor = Glm4vProcessor(
            image_processor=Glm4vImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}, **sizes),
            video_processor=Glm4vVideoProcessor(**sizes),
            tokenizer=tokenizer,
            chat_template=qwen_chat_template("<|begin_of_image|><|image|><|end_of_image|>"),
        )
        return build_and_save(Glm4vForConditionalGeneration, config, processor, directory, seed)
