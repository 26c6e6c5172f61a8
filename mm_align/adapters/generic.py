"""The adapter for any transformers VLM with an image placeholder token and
``get_image_features``: the vision stages are found by probing, the LLM stages come from the
hooks of :class:`~mm_align.adapters.base.VLMAdapter`.

- ``"projector"``: what ``get_image_features`` returns in the joint forward pass, i.e. exactly
  the rows the model writes over its image placeholder tokens, one per image token, in token
  order (:mod:`~mm_align.adapters.features`); for a video, what ``get_video_features``
  returns, one row per video token; for several images, every image's rows in image order.
- ``"vision"``: the rows entering the connector (``projector_paths``), as the vision tower
  delivers them: one row per patch at the vision width (``vision_view="patches"``, the
  default), or as the connector's first learned map sees them after it groups patches
  (``vision_view="merged"``: the input of its first ``nn.Linear``, e.g. Qwen's merger MLP
  over 2 x 2 patches, Idefics3's pixel-shuffled rows, Mistral 3's patch merger). Where a
  connector does not group patches the two views are the same rows.

The vision rows of a batch are cut per sample in proportion to each sample's pixel values:
tiles and patches have a fixed size, so a sample's share of the connector's rows is its
share of the pixels (checked to divide exactly). A family whose layout breaks that rule
overrides :meth:`GenericVLMAdapter._vision_units`.

A family module subclasses :class:`GenericVLMAdapter`, registers it, names its model class
and connector, and builds its tiny checkpoint; everything else is here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel

from mm_align.adapters.base import VisionSplit, VLMAdapter
from mm_align.adapters.encoding import Encoded
from mm_align.adapters.features import calls_of, feature_rows, features_owner
from mm_align.capture import Tap, capture, input_of

__all__ = ["GenericVLMAdapter", "split_by_units"]


class GenericVLMAdapter(VLMAdapter):
    """Probing adapter; see the module doc for the stages and
    :class:`~mm_align.adapters.base.VLMAdapter` for prompts and masks."""

    vision_views: ClassVar[tuple[str, ...]] = ("patches", "merged")
    pixel_key: ClassVar[str] = "pixel_values"
    """The processor output whose size measures a sample's share of the vision rows."""
    vision_tap: ClassVar[str] = ""
    """Where the ``"patches"`` view is read, in words (default: the connector's input)."""
    patches_method: ClassVar[str | None] = None
    """A method of the model (next to ``get_image_features``) whose first argument holds the
    patch rows, for a family that regroups patches before its connector module (InternVL's
    ``pixel_shuffle``); None: the patches are the connector's input."""

    @classmethod
    def taps(cls) -> dict[str, str]:
        """Where each stage is read, in words: ``vision`` (patches view), ``merged`` (the merged
        view, when offered), ``projector``."""
        connector = cls.projector_paths[0] if cls.projector_paths else "the connector"
        described = {"vision": cls.vision_tap or f"{connector} input", "projector": "get_image_features output"}
        if "merged" in cls.vision_views:
            described["merged"] = f"{connector}: first Linear's input"
        return described

    def __init__(self, model: PreTrainedModel, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self._features_owner = features_owner(model)
        if self.vision_view == "merged":
            self._merged_tap()  # fail now, not at the first sample

    def _patches_tap(self) -> Tap:
        """The ``"patches"`` view: by default the connector's input."""
        return input_of(self.projector)

    def _merged_tap(self) -> Tap:
        """The ``"merged"`` view: the input of the connector's first ``nn.Linear``."""
        linear = next((m for m in self.projector.modules() if isinstance(m, nn.Linear)), None)
        if linear is None:
            raise ValueError(f"{self.model_type}: the connector has no linear layer; use vision_view='patches'")
        return input_of(linear)

    def _cut_vision(self, found: Sequence[torch.Tensor], samples: Sequence[Encoded]) -> Sequence[torch.Tensor]:
        """Per sample, its vision rows (rows x width), from the tensors the vision tap caught
        during the joint pass (one per call); by default cut in proportion to the pixels."""
        rows = torch.cat([_rows(tensor) for tensor in found])
        return split_by_units(rows, [self._vision_units(sample) for sample in samples], "vision")

    def _vision_units(self, sample: Encoded) -> int:
        """A sample's share of the vision rows, in any unit proportional to them."""
        key = self.pixel_key if self.pixel_key in sample.inputs else "pixel_values_videos"
        return int(sample.inputs[key].numel())

    @contextmanager
    def _vision_capture(self, modality: str = "image") -> Iterator[VisionSplit]:
        method = self.patches_method if self.vision_view == "patches" else None
        tap = self._merged_tap() if self.vision_view == "merged" else self._patches_tap()
        recorded: AbstractContextManager[list[Any]] = (
            calls_of(self._features_owner, method, keep_first_arg=True) if method else nullcontext([])
        )
        # A clip's rows are what get_video_features returns (Qwen3-VL's calls
        # get_image_features in turn: recording both would count its rows twice).
        features = "get_video_features" if modality == "video" else "get_image_features"
        with (
            capture({} if method else {"vision": tap}) as got,
            recorded as method_calls,
            calls_of(self._features_owner, features) as feature_calls,
        ):

            def split(samples: Sequence[Encoded]) -> list[tuple[torch.Tensor, torch.Tensor]]:
                found = [call.first_arg for call in method_calls] if method else got.calls("vision")
                projector = torch.cat([feature_rows(call.returned) for call in feature_calls])
                image_tokens = [int(sample.image.sum()) for sample in samples]
                return list(zip(self._cut_vision(found, samples), split_by_units(projector, image_tokens, "projector")))

            yield split


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """Any (..., width) tensor as (rows, width)."""
    return tensor.reshape(-1, tensor.shape[-1])


def split_by_units(rows: torch.Tensor, units: Sequence[int], what: str) -> tuple[torch.Tensor, ...]:
    """Cut ``rows`` (N x d) into consecutive blocks proportional to ``units`` (one per sample).

    Raises:
        RuntimeError: the rows do not divide in that proportion (the adapter does not fit).
    """
    total = sum(units)
    sizes = [rows.shape[0] * unit // total for unit in units]
    if sum(sizes) != rows.shape[0] or any(size * total != rows.shape[0] * unit for size, unit in zip(sizes, units)):
        raise RuntimeError(
            f"{rows.shape[0]} {what} rows do not divide over the samples in proportion {list(units)}; "
            "the adapter does not match this model"
        )
    return rows.split(sizes)
