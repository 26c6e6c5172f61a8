"""What the Qwen-VL line (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5, GLM-4.1V) shares: a ViT
over 14 / 16 px patches whose connector merges 2 x 2 neighbouring patches into one image token,
images wrapped in start / end markers, and one flat sequence of all images' patches.

Vision views: ``"patches"`` (default) = the merger's input, ``spatial_merge_size**2`` rows of
ViT width per image token; ``"merged"`` = the input of the merger's first linear layer, one row
per image token of ``spatial_merge_size**2`` x ViT width (the 2 x 2 group as its MLP sees it,
after the merger's per-patch norm).
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PreTrainedModel

from mm_align.adapters.generic import GenericVLMAdapter
from mm_align.data.video import FrameSampling

__all__ = ["QwenStyleAdapter", "QwenVideoAdapter"]


class QwenStyleAdapter(GenericVLMAdapter):
    """An image is ``start marker + image token + end marker`` in a plain prompt."""

    projector_paths = ("model.visual.merger", "visual.merger")
    marker_ids: ClassVar[tuple[str, str]] = ("vision_start_token_id", "vision_end_token_id")
    """The config fields holding the ids of the markers around an image."""

    def __init__(self, model: PreTrainedModel, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        start, end = (getattr(model.config, field) for field in self.marker_ids)
        self._markers = processor.tokenizer.convert_ids_to_tokens([start, end])

    def _image_prefix(self) -> str:
        return f"{self._markers[0]}{self.image_token}{self._markers[1]}"

    def _video_prefix(self) -> str:
        return f"{self._markers[0]}{self.video_token}{self._markers[1]}"


class QwenVideoAdapter(QwenStyleAdapter):
    """A Qwen-style family that scores video clips and several images per sample.

    A clip is ``start marker + video token + end marker``, expanded by the processor into one
    token per 2 x 2 patches of each pair of frames (Qwen3-VL: per pair of frames, a
    ``<t seconds>`` timestamp and the markers). Frames: 2 per second of the clip, at most 768
    (qwen-vl-utils' ``FPS`` and ``FPS_MAX_FRAMES``), each within qwen-vl-utils' pixel budget
    of a video (``cap_pixels_per_frame``). Several images: one marked image after another,
    their rows stacked in image order."""

    frame_sampling = FrameSampling(fps=2.0, max_frames=768)
    video_kwargs: ClassVar[dict[str, Any]] = {"cap_pixels_per_frame": True}
    max_images_per_sample = None
