"""Qwen2-Audio (``model_type`` ``"qwen2_audio"``, e.g. Qwen/Qwen2-Audio-7B-Instruct): a Whisper
encoder (with a 2x average pool) -> one linear projector -> Qwen2.

Stages (:mod:`~mm_align.adapters.audio`): ``"vision"`` = the encoder's pooled output at the
projector's input, one row per audio token (the clip's real frames: the extractor pads every
clip to 30 s, the rows of the padding are dropped exactly as the model drops them);
``"projector"`` = the projector's output at those rows, the embeddings written over the
``<|AUDIO|>`` tokens. Qwen2-Audio has no ``get_audio_features``; the common tests check the
projector rows against the LLM's input embeddings. Plain prompt: ``<|audio_bos|>``, the audio
tokens, ``<|audio_eos|>``, then the text.
"""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

from mm_align.adapters.audio import GenericAudioAdapter
from mm_align.adapters.registry import register
from mm_align.adapters.tiny import build_and_save
from mm_align.adapters.tiny.audio import (
    qwen_audio_tokenizer,
    tiny_qwen2_text,
    tiny_whisper_encoder,
    tiny_whisper_features,
)

__all__ = ["Qwen2AudioAdapter"]


@register("qwen2_audio")
class Qwen2AudioAdapter(GenericAudioAdapter):
    """Qwen2-Audio adapter; see the module doc."""

    model_class = Qwen2AudioForConditionalGeneration
    example_id = "Qwen/Qwen2-Audio-7B-Instruct"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Whisper encoder (2 layers, width 32, 16 mel bins, 4 s window: 100 audio tokens at
        most) + Qwen2 (2 layers, width 64), randomly initialised with ``seed``."""
        tokenizer, ids = qwen_audio_tokenizer()
        config = Qwen2AudioConfig(
            audio_config={"model_type": "qwen2_audio_encoder", **tiny_whisper_encoder()},
            text_config=tiny_qwen2_text(len(tokenizer), ids),
            audio_token_index=ids["<|AUDIO|>"],
        )
        processor = Qwen2AudioProcessor(feature_extractor=tiny_whisper_features(), tokenizer=tokenizer)
        return build_and_save(Qwen2AudioForConditionalGeneration, config, processor, directory, seed)
