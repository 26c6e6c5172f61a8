"""The adapter for any transformers audio-language model: an audio encoder, a connector
(projector) and audio placeholder tokens in the LLM's sequence, the VLM shape with sound.

The five stages keep their names (:mod:`mm_align.stages`; docs/CHOICES.md says why):

- ``"vision"``: the audio encoder's rows as the connector takes them (the connector's input),
  one row per audio token (every served connector maps row by row);
- ``"projector"``: what the connector returns, one row per audio token (the rows the model
  writes over its audio placeholders; the common tests check them against
  ``get_audio_features`` and the LLM's input embeddings);
- ``"image"``: the LLM's states at the audio tokens, the audio heard alone (plain prompt: the
  audio is a causal prefix); ``"text"``, ``"joint"``: as for images.

The connector's input and output are read with hooks during the joint pass and cut per
sample: a batch holds each clip's rows either concatenated (``(rows, width)``) or stacked and
padded (``(clips, frames, width)``, one clip per sample); a sample keeps as many rows of its
clip as it has audio tokens (the rows of the padding are those the model drops too).

A clip must fit the feature extractor's window (``chunk_length``, 30 s in the released
checkpoints): a longer one is refused with its duration (``--max-audio-seconds`` with
``--audio-overflow truncate`` scores its start instead). Masks, prompts, batching and LLM capture
are :class:`~mm_align.adapters.base.VLMAdapter`'s.

A sample's audio is a mono float waveform (1-D ``numpy`` array) at :attr:`sampling_rate`;
decoding and resampling files is the data layer's job (:mod:`mm_align.data.audio`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from mm_align.adapters.base import AdapterInputError, Encoded, VisionSplit, VLMAdapter
from mm_align.capture import capture, input_of, output_of

__all__ = ["GenericAudioAdapter"]


class GenericAudioAdapter(VLMAdapter):
    """Audio-language adapter; see the module doc for the stages and
    :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks (``image`` = the audio
    placeholder tokens; the ``image_token`` / ``image_token_id`` attributes hold the audio
    placeholder)."""

    modality: ClassVar[str] = "audio"
    placeholder_config_keys: ClassVar[tuple[str, ...]] = ("audio_token_id", "audio_token_index")
    projector_paths: ClassVar[tuple[str, ...]] = ("model.multi_modal_projector", "multi_modal_projector")
    """Where transformers' audio-language models keep their connector (newest layout first)."""
    max_images_per_sample: ClassVar[int] = 1

    @classmethod
    def taps(cls) -> dict[str, str]:
        connector = cls.projector_paths[0] if cls.projector_paths else "the connector"
        return {"vision": f"{connector} input (audio encoder rows)", "projector": f"{connector} output"}

    def _image_prefix(self) -> str:
        """The audio placeholder, between the processor's audio start / end markers when it
        names them (Qwen2-Audio, Qwen2.5-Omni: ``<|audio_bos|>`` ... ``<|audio_eos|>``)."""
        start = getattr(self.processor, "audio_bos_token", None) or ""
        end = getattr(self.processor, "audio_eos_token", None) or ""
        return f"{start}{self.image_token}{end}"

    @property
    def sampling_rate(self) -> int:
        """The rate (Hz) the feature extractor expects its waveforms at."""
        return int(self.processor.feature_extractor.sampling_rate)

    # ---- inputs -------------------------------------------------------------------------

    def _check_image(self, image: Any, index: int) -> None:
        """A clip must be one non-empty, finite, mono waveform."""
        if isinstance(image, (list, tuple)):
            raise AdapterInputError(
                f"sample {index}: {len(image)} audio clips in one sample; the {self.model_type} adapter "
                f"takes at most {self.max_images_per_sample} clip per sample"
            )
        if not isinstance(image, (np.ndarray, torch.Tensor)):
            raise AdapterInputError(
                f"sample {index}: audio must be a waveform (numpy array or tensor), not {type(image).__name__}"
            )
        if image.ndim != 1:
            raise AdapterInputError(f"sample {index}: audio must be mono (1-D), not of shape {tuple(image.shape)}")
        if image.shape[0] == 0:
            raise AdapterInputError(f"sample {index}: the audio clip is empty (0 samples)")
        # The processors cut a clip to their window (Qwen2-Audio, Qwen2.5-Omni: silently) or
        # split it into windows (Audio Flamingo 3, GLM-ASR): refused, so that no audio is lost.
        window = getattr(self.processor.feature_extractor, "chunk_length", None)
        if window and image.shape[0] > window * self.sampling_rate:
            raise AdapterInputError(
                f"sample {index}: the clip lasts {image.shape[0] / self.sampling_rate:.2f} s, longer than the "
                f"{self.model_type} window of {window} s (cut it with --max-audio-seconds {window} "
                "--audio-overflow truncate)"
            )
        values = torch.as_tensor(image)
        if not values.is_floating_point() or not bool(torch.isfinite(values).all()):
            raise AdapterInputError(f"sample {index}: audio must hold finite float samples ({self._describe(image)})")

    @staticmethod
    def _describe(image: Any) -> str:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        return f"{type(image).__name__} of shape {tuple(shape)}, {dtype}" if shape is not None else type(image).__name__

    def _process(self, prompt: str, image: Any | None) -> dict[str, torch.Tensor]:
        kwargs: dict[str, Any] = {"text": [prompt], "return_tensors": "pt", "return_offsets_mapping": True}
        if image is not None:
            waveform = image.numpy() if isinstance(image, torch.Tensor) else image
            kwargs.update(audio=[np.asarray(waveform, dtype=np.float32)], sampling_rate=self.sampling_rate)
        return {key: value for key, value in self.processor(**kwargs).items() if isinstance(value, torch.Tensor)}

    # ---- stages -------------------------------------------------------------------------

    @contextmanager
    def _vision_capture(self, modality: str = "audio") -> Iterator[VisionSplit]:
        taps = {"vision": input_of(self.projector), "projector": output_of(self.projector)}
        with capture(taps) as got:

            def split(samples: Sequence[Encoded]) -> list[tuple[torch.Tensor, torch.Tensor]]:
                tokens = [int(sample.image.sum()) for sample in samples]
                vision = _per_clip(got.calls("vision"), tokens, "vision")
                projector = _per_clip(got.calls("projector"), tokens, "projector")
                return list(zip(vision, projector))

            yield split


def _per_clip(found: Sequence[torch.Tensor], rows: Sequence[int], what: str) -> list[torch.Tensor]:
    """Per sample, its first ``rows[b]`` rows from the tensors a tap caught during one pass:
    concatenated clips ``(rows, width)`` are split in order; stacked clips ``(clips, frames,
    width)``, one per sample, are cut at each clip's length.

    Raises:
        RuntimeError: the tensors do not hold that many rows per sample (the adapter does not
            fit the model).
    """
    if all(tensor.dim() == 2 for tensor in found):
        flat = torch.cat(list(found))
        if flat.shape[0] == sum(rows):
            return list(flat.split(list(rows)))
    elif all(tensor.dim() == 3 for tensor in found):
        stacked = torch.cat(list(found))
        if stacked.shape[0] == len(rows) and max(rows) <= stacked.shape[1]:
            return [clip[:n] for clip, n in zip(stacked, rows)]
    shapes = [tuple(tensor.shape) for tensor in found]
    raise RuntimeError(
        f"the {what} rows {shapes} do not hold {list(rows)} rows per sample; the adapter does not match this model"
    )
