"""The random-weight smoke-test checkpoints built by ``mm-align tiny``. Never use them for real
measurements.

This module: a tiny byte-level BPE tokenizer trained offline in milliseconds, and the saving
step that marks a checkpoint as random. Its submodules hold the parts that several families'
``build_tiny`` share (a family module imports them, never another family):
:mod:`~mm_align.adapters.tiny.vision` (CLIP / SigLIP towers), :mod:`~.llama`, :mod:`~.gemma`,
:mod:`~.cohere`, :mod:`~.idefics`, :mod:`~.qwen` (tokenizers, text configs, chat templates and
processors of those lines), :mod:`~.audio` (Whisper-style feature extractors and encoders of the
audio families) and :mod:`~.text` (the text LLMs of ``diff-erank``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    ProcessorMixin,
)

# Enough text for a few hundred merges so that ordinary English words become a handful of tokens.
_CORPUS = (
    "A photograph of an astronaut in a white space suit holding a helmet.",
    "A cat sits on a wooden floor and looks at the camera.",
    "A cup of coffee with latte art on a saucer, seen from above.",
    "Describe the image in detail. What is in this picture?",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "There are two people walking along a street with tall buildings and cars.",
    "A red bus is parked next to a green tree in the city centre.",
    "The image shows a person, an animal, some food and a bright blue sky.",
)


def build_tiny_tokenizer(
    special_tokens: Sequence[str],
    *,
    vocab_size: int = 512,
    bos_token: str | None = None,
    **tokenizer_kwargs: object,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on a built-in corpus and wrap it for ``transformers``.

    ``special_tokens`` get the first ids (0, 1, ...) in the given order and are never split.
    When ``bos_token`` is given it is prepended to every encoded sequence (Llama style).
    ``tokenizer_kwargs`` (``eos_token``, ``pad_token``, ``extra_special_tokens`` ...) go to
    ``PreTrainedTokenizerFast``.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    byte_level = processors.ByteLevel(trim_offsets=False)
    if bos_token is None:
        tok.post_processor = byte_level
    else:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.Sequence(
            [
                byte_level,
                processors.TemplateProcessing(
                    single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, bos_id)]
                ),
            ]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos_token, **tokenizer_kwargs)


TINY_NOTE = "RANDOM WEIGHTS - for smoke tests only"


def build_and_save(
    model_class: type[PreTrainedModel], config: Any, processor: ProcessorMixin, directory: str | Path, seed: int
) -> Path:
    """``model_class(config)`` initialised under ``seed``, saved with ``processor`` by :func:`save_tiny`."""
    torch.manual_seed(seed)
    return save_tiny(model_class(config), processor, directory)


def save_tiny(
    model: PreTrainedModel, processor: ProcessorMixin | PreTrainedTokenizerBase, directory: str | Path
) -> Path:
    """Mark ``model``'s config as a tiny random checkpoint (``mm_align_tiny`` field) and save
    model and processor (or, for a text model, tokenizer) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.mm_align_tiny = TINY_NOTE
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
