"""GLM-ASR (``model_type`` ``"glmasr"``, e.g. zai-org/GLM-ASR-Nano-2512): a Whisper-style
encoder with rotary attention -> 4 frames merged into one row -> a two-layer MLP projector ->
Llama.

Stages (:mod:`~mm_align.adapters.audio`): ``"vision"`` = the merged encoder rows at the
projector's input (4 frames side by side, one row per audio token; the rows of the padded
30 s window are dropped as ``get_audio_features`` drops them); ``"projector"`` = what
``get_audio_features`` returns, one row per audio token. The encoder takes no attention mask:
every clip is padded to the window, so a batch still equals its samples one at a time. A
clip is one window: a longer one is refused. Plain prompt: the audio tokens, then the text.
"""

from __future__ import annotations

from pathlib import Path

from transformers import GlmAsrConfig, GlmAsrForConditionalGeneration, GlmAsrProcessor

from mm_align.adapters.audio import GenericAudioAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.audio import (
    TINY_MEL_BINS,
    qwen_audio_tokenizer,
    tiny_qwen2_text,
    tiny_whisper_features,
)
from mm_align.adapters.tiny.qwen import qwen_chat_template

__all__ = ["GlmAsrAdapter"]


@register("glmasr")
class GlmAsrAdapter(GenericAudioAdapter):
    """GLM-ASR adapter; see the module doc."""

    model_class = GlmAsrForConditionalGeneration
    example_id = "zai-org/GLM-ASR-Nano-2512"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """GLM-ASR encoder (2 layers, width 32, 16 mel bins, 4 s window: 50 audio tokens at
        most) + Llama (2 layers, width 64), randomly initialised with ``seed``."""
        tokenizer, ids = qwen_audio_tokenizer("<|pad|>")
        text = tiny_qwen2_text(len(tokenizer), ids, model_type="llama", bos_token_id=None,
                               rope_parameters={"rope_theta": 10000.0, "rope_type": "default"})
        config = GlmAsrConfig(
            audio_config={"model_type": "glmasr_encoder", "num_mel_bins": TINY_MEL_BINS, "hidden_size": 32,
                          "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                          "num_key_value_heads": 2, "max_position_embeddings": 512},
            text_config=text,
            audio_token_id=ids["<|pad|>"],
        )
        processor = GlmAsrProcessor(feature_extractor=tiny_whisper_features(), tokenizer=tokenizer, max_audio_len=60,
                                    chat_template=qwen_chat_template("<|pad|>", kind="audio"))
        return build_and_save(GlmAsrForConditionalGeneration, config, processor, directory, seed)
