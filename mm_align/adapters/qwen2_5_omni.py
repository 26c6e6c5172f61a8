"""Qwen2.5-Omni's thinker (``model_type`` ``"qwen2_5_omni_thinker"``, the understanding half
of e.g. Qwen/Qwen2.5-Omni-7B, without its speech-generating talker): a Whisper-style encoder
(windowed attention over each clip alone, 2x average pool, layer norm, linear ``proj``) ->
Qwen2.5 with multimodal rotary positions.

Stages (:mod:`~mm_align.adapters.audio`): ``"vision"`` = the encoder rows at the input of
``audio_tower.proj`` (after its final layer norm: the projection is the connector), one row per
audio token, the clips concatenated; ``"projector"`` = what ``get_audio_features`` returns, the
rows written over the ``<|AUDIO|>`` tokens. Plain prompt: ``<|audio_bos|>``, the audio tokens,
``<|audio_eos|>``, then the text.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from mm_align.adapters.audio import GenericAudioAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.audio import (
    qwen_audio_tokenizer,
    tiny_qwen2_text,
    tiny_whisper_encoder,
    tiny_whisper_features,
)
from mm_align.adapters.tiny.qwen import qwen_chat_template

__all__ = ["Qwen2_5OmniThinkerAdapter"]

_MARKERS = {"image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "vision_bos_token": "<|vision_bos|>",
            "vision_eos_token": "<|vision_eos|>", "audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>"}


@register("qwen2_5_omni_thinker")
class Qwen2_5OmniThinkerAdapter(GenericAudioAdapter):
    """Qwen2.5-Omni thinker adapter; see the module doc."""

    model_class = Qwen2_5OmniThinkerForConditionalGeneration
    example_id = "Qwen/Qwen2.5-Omni-7B (its thinker)"
    projector_paths = ("model.audio_tower.proj", "audio_tower.proj")

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Omni audio encoder (2 layers, width 32, 16 mel bins, 4 s window) + a tiny vision
        tower (unused here) + Qwen2.5 (2 layers, width 64, 3-D rotary sections), randomly
        initialised with ``seed``."""
        special = ("<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>")
        named = {key: value for key, value in _MARKERS.items()}
        tokenizer, ids = qwen_audio_tokenizer(*special, **named)
        text = tiny_qwen2_text(len(tokenizer), ids, model_type="qwen2_5_omni_text",
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "mrope_section": [2, 3, 3]})
        config = Qwen2_5OmniThinkerConfig(
            audio_config={**tiny_whisper_encoder(), "n_window": 50, "output_dim": 64},
            vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                           "out_hidden_size": 64, "fullatt_block_indexes": [0]},
            text_config=text,
            audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"],
            video_token_index=ids["<|VIDEO|>"], audio_start_token_id=ids["<|audio_bos|>"],
            audio_end_token_id=ids["<|audio_eos|>"], vision_start_token_id=ids["<|vision_bos|>"],
            vision_end_token_id=ids["<|vision_eos|>"],
        )
        processor = Qwen2_5OmniProcessor(
            image_processor=Qwen2VLImageProcessor(), video_processor=Qwen2VLVideoProcessor(),
            feature_extractor=tiny_whisper_features(), tokenizer=tokenizer,
            chat_template=qwen_chat_template("<|audio_bos|><|AUDIO|><|audio_eos|>", kind="audio"),
        )
        return build_and_save(Qwen2_5OmniThinkerForConditionalGeneration, config, processor, directory, seed)
