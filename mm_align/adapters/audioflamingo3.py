"""Audio Flamingo 3 (``model_type`` ``"audioflamingo3"``, e.g. nvidia/audio-flamingo-3-hf): a
Whisper-style encoder (masked attention, 2x average pool) -> a two-layer MLP projector ->
Qwen2.

Stages (:mod:`~mm_align.adapters.audio`): ``"vision"`` = the encoder's pooled output at the
projector's input, the clip's real rows (the extractor pads each 30 s window; the rows of the
padding are dropped as ``get_audio_features`` drops them); ``"projector"`` = the MLP's output
at those rows, what ``get_audio_features`` returns, one row per ``<sound>`` token. A clip is
one window: a longer one is refused (the data layer's ``--max-audio-seconds`` cuts it).
Plain prompt: the ``<sound>`` tokens, then the text.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
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

__all__ = ["AudioFlamingo3Adapter"]


@register("audioflamingo3")
class AudioFlamingo3Adapter(GenericAudioAdapter):
    """Audio Flamingo 3 adapter; see the module doc."""

    model_class = AudioFlamingo3ForConditionalGeneration
    example_id = "nvidia/audio-flamingo-3-hf"

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Whisper-style encoder (2 layers, width 32, 16 mel bins, 4 s window: 100 audio
        tokens at most) + Qwen2 (2 layers, width 64), randomly initialised with ``seed``."""
        tokenizer, ids = qwen_audio_tokenizer("<sound>")
        encoder = tiny_whisper_encoder()
        config = AudioFlamingo3Config(
            audio_config={"model_type": "audioflamingo3_encoder", "num_mel_bins": encoder["num_mel_bins"],
                          "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                          "hidden_size": 32, "max_source_positions": encoder["max_source_positions"]},
            text_config=tiny_qwen2_text(len(tokenizer), ids),
            audio_token_id=ids["<sound>"],
        )
        processor = AudioFlamingo3Processor(feature_extractor=tiny_whisper_features(), tokenizer=tokenizer,
                                            max_audio_len=60,
                                            chat_template=qwen_chat_template("<sound>", kind="audio"))
        return build_and_save(AudioFlamingo3ForConditionalGeneration, config, processor, directory, seed)
