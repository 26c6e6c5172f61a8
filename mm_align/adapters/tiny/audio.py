"""Shared pieces of the tiny random-weight audio-language checkpoints built by
``mm-align tiny``: a short-window Whisper feature extractor, a Whisper-style encoder config,
the toy tokenizer with Qwen's chat markers, and a Qwen2 LLM config. Never use these
checkpoints for real measurements."""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

from mm_align.adapters.tiny import build_tiny_tokenizer

__all__ = [
    "TINY_CHUNK_SECONDS",
    "TINY_MEL_BINS",
    "qwen_audio_tokenizer",
    "tiny_qwen2_text",
    "tiny_whisper_encoder",
    "tiny_whisper_features",
]

TINY_CHUNK_SECONDS = 4
"""The feature extractor's window: clips are padded (or cut) to this many seconds."""
TINY_MEL_BINS = 16

QWEN_AUDIO_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|audio_eos|>", "<|AUDIO|>")


def tiny_whisper_features(**extra: object) -> WhisperFeatureExtractor:
    """A 16 kHz log-mel extractor with 16 bins over a 4-second window (400 frames)."""
    return WhisperFeatureExtractor(feature_size=TINY_MEL_BINS, chunk_length=TINY_CHUNK_SECONDS, **extra)


def tiny_whisper_encoder(**extra: object) -> dict:
    """A 2-layer, width-32 Whisper-style encoder over the tiny extractor's frames (the two
    convolutions halve 400 frames to 200 positions)."""
    return {"num_mel_bins": TINY_MEL_BINS, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
            "d_model": 32, "max_source_positions": TINY_CHUNK_SECONDS * 50, **extra}


def qwen_audio_tokenizer(*special: str, **named: str) -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    """The toy tokenizer with Qwen's end-of-text, chat and audio markers plus ``special``
    (no BOS, as in Qwen); ``named`` become attributes of the tokenizer."""
    tokens = (*QWEN_AUDIO_TOKENS, *special)
    tokenizer = build_tiny_tokenizer(tokens, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                     extra_special_tokens=named)
    return tokenizer, {token: tokenizer.convert_tokens_to_ids(token) for token in tokens}


def tiny_qwen2_text(vocab_size: int, ids: dict[str, int], **extra: object) -> dict:
    """A 2-layer, width-64 Qwen2 text config."""
    return {"model_type": "qwen2", "vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 2048, "pad_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"], **extra}
