"""How a VLM adapter encodes one sample: the prompt (plain or the chat template), the
processor's input, and the token masks that say which tokens are the image and which the text.

:class:`PromptEncoding` is mixed into :class:`~mm_align.adapters.base.VLMAdapter`, whose
constructor sets the attributes it reads; a family overrides :meth:`~PromptEncoding._image_prefix`
or :meth:`~PromptEncoding._process` when its prompt or processor needs it.

Input checks (:meth:`~PromptEncoding._input_visual`) are also where every family's PIL images
become the mode processors need, RGB, by the data layer's rules
(:func:`mm_align.data.images.to_rgb`: transparency over white, 16-bit scaled, CMYK by PIL), so
an L, LA, P, RGBA, I;16 or CMYK image handed to ``represent`` gives what the same file gives
through the pipeline, whichever family, instead of a processor's shape error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image

from mm_align.adapters.batching import SEQUENCE_KEYS
from mm_align.data import BadSampleError, to_rgb
from mm_align.data.video import FrameSampling, Video

__all__ = ["AdapterInputError", "Encoded", "PromptEncoding", "PromptStyle", "describe_image", "modality_of"]

PromptStyle = Literal["plain", "chat"]

# Stands in for the user text while rendering a chat template, to find where the text goes.
_TEXT_SENTINEL = "\u2063mm_align_user_text\u2063"


class AdapterInputError(ValueError):
    """An image or a text that the model (its processor) cannot take; says which and why."""


@dataclass(frozen=True)
class Encoded:
    """One sample's processed input (batch dim 1, unpadded, on CPU) and its token masks:
    ``image`` = image placeholder tokens, ``text`` = tokens overlapping the user text."""

    inputs: dict[str, torch.Tensor]
    image: torch.Tensor
    text: torch.Tensor

    @property
    def length(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    def image_prefix(self) -> Encoded:
        """This input cut after its last image token: the image seen without the text."""
        cut = int(torch.nonzero(self.image).max()) + 1
        inputs = {key: value[:, :cut] if key in SEQUENCE_KEYS else value for key, value in self.inputs.items()}
        return Encoded(inputs, self.image[:cut], self.text[:cut])


class PromptEncoding:
    """Prompts, processor calls and token masks of one sample (see the module doc)."""

    # Declared (with their documentation) by VLMAdapter.
    model_type: ClassVar[str]
    modality: ClassVar[str]
    max_images_per_sample: ClassVar[int | None]
    frame_sampling: ClassVar[FrameSampling | None]
    video_kwargs: ClassVar[dict[str, Any]]
    prompt_tail: ClassVar[str]
    processor: Any
    prompt: str
    include_special: bool
    count_first_position: bool
    image_token: str
    """The processor's image placeholder, expanded by it into the image tokens."""
    image_token_id: int
    video_token: str | None
    """The processor's video placeholder (None: it has none)."""
    video_token_id: int | None

    def _image_prefix(self) -> str:
        """The text that stands for one image in a plain prompt (expanded by the processor)."""
        return self.image_token

    def _video_prefix(self) -> str:
        """The text that stands for one clip in a plain prompt (expanded by the processor)."""
        return self.video_token or ""

    def _modality_of(self, visual: Any) -> str:
        """What ``visual`` is for this family: ``"audio"`` (a clip of sound) for an audio model,
        else :func:`modality_of` (``"image"``, ``"images"`` or ``"video"``)."""
        return "audio" if self.modality == "audio" else modality_of(visual)

    def _check_visual(self, visual: Any, index: int) -> None:
        """Refuse a visual input (or audio clip) this family cannot take, before any processing."""
        modality = self._modality_of(visual)
        if modality == "video":
            if self.frame_sampling is None or self.video_token_id is None or not self.video_token:
                raise AdapterInputError(f"sample {index}: the {self.model_type} adapter takes no video "
                                        "(`mm-align families` lists those that do)")
            if len(visual) == 0:
                raise AdapterInputError(f"sample {index}: the video has no frames")
            return
        if modality in ("image", "audio"):
            self._check_image(visual, index)
            return
        limit = self.max_images_per_sample
        if not visual:
            raise AdapterInputError(f"sample {index}: an empty list of images")
        if limit is not None and len(visual) > limit:
            raise AdapterInputError(
                f"sample {index}: {len(visual)} images in one sample; the {self.model_type} adapter "
                f"takes at most {limit} image{'s' if limit > 1 else ''} per sample"
            )
        for image in visual:
            self._check_image(image, index)

    def _input_visual(self, visual: Any, index: int) -> Any:
        """``visual`` checked (:meth:`_check_visual`), its PIL images in RGB (see the module
        doc); arrays, tensors and clips as given."""
        self._check_visual(visual, index)
        if isinstance(visual, (list, tuple)):
            return [self._rgb(image, index) for image in visual]
        return self._rgb(visual, index)

    @staticmethod
    def _rgb(image: Any, index: int) -> Any:
        if not isinstance(image, Image.Image) or (image.mode == "RGB" and "transparency" not in image.info):
            return image
        try:
            return to_rgb(image, f"a {image.mode} image")
        except (BadSampleError, ValueError, OSError) as err:  # an unknown mode, a closed image
            raise AdapterInputError(f"sample {index}: the image cannot be converted to RGB ({err})") from err

    def _check_image(self, image: Any, index: int) -> None:
        # Processors treat a str as a path or URL and would fetch it: loading is the data layer's job.
        if not isinstance(image, (Image.Image, np.ndarray, torch.Tensor)):
            raise AdapterInputError(
                f"sample {index}: images must be PIL images, numpy arrays or tensors, not {type(image).__name__}"
            )
        if isinstance(image, Image.Image):
            empty = 0 in image.size
        else:
            empty = image.ndim < 2 or 0 in tuple(image.shape)
        if empty:
            raise AdapterInputError(f"sample {index}: the image is empty ({self._describe(image)})")

    @staticmethod
    def _describe(image: Any) -> str:
        """What stands for the image (or clip) in words, for error messages."""
        return describe_image(image)

    def _check_text(self, text: str, index: int) -> None:
        if not isinstance(text, str):
            raise AdapterInputError(f"sample {index}: text must be a str, not {type(text).__name__}")
        if not text.strip():
            raise AdapterInputError(f"sample {index}: the text is empty")
        video = self.video_token if self.frame_sampling is not None else None
        for what, token in (("image", self.image_token), ("video", video)):
            if token and token in text:
                raise AdapterInputError(
                    f"sample {index}: the text contains the {what} placeholder {token!r}; "
                    f"the adapter inserts the {what} itself"
                )

    def _placeholders(self, visual: Any | None) -> tuple[str, list[dict[str, str]]]:
        """What stands for ``visual`` before the text: in a plain prompt, and as chat content
        (several images: one after another, in order; an audio model's clip: an ``audio`` item)."""
        if visual is None:
            return "", []
        modality = self._modality_of(visual)
        if modality == "video":
            return self._video_prefix(), [{"type": "video"}]
        n = len(visual) if modality == "images" else 1
        return self._image_prefix() * n, [{"type": self.modality}] * n

    def _prompt(self, text: str, visual: Any | None) -> tuple[str, int]:
        """The prompt string and the character offset where ``text`` starts in it."""
        prefix, content = self._placeholders(visual)
        if self.prompt == "plain":
            return prefix + text, len(prefix)

        def render(content_text: str) -> str:
            messages = [{"role": "user", "content": [*content, {"type": "text", "text": content_text}]}]
            return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

        parts = render(_TEXT_SENTINEL).split(_TEXT_SENTINEL)
        prompt = render(text)
        if len(parts) != 2 or prompt != parts[0] + text + parts[1]:
            raise RuntimeError("the chat template does not insert the user text verbatim; use prompt='plain'")
        return prompt, len(parts[0])

    def _process(self, prompt: str, image: Any | None) -> dict[str, torch.Tensor]:
        """The processor's output for one prompt (``image=None``: text only), with offsets;
        ``image`` may be a list of images or a :class:`~mm_align.data.video.Video`, whose
        frames the processor takes as they are (no sampling of its own).

        A prompt that already starts with the BOS (a chat template that renders it, as Gemma 3's
        and Idefics3's do) gets no special tokens added: the ids then equal those of
        ``processor.apply_chat_template(messages, tokenize=True)``, which follows the same rule,
        and the sequence has one BOS, not two."""
        kwargs: dict[str, Any] = {"text": [prompt], "return_tensors": "pt", "return_offsets_mapping": True}
        bos = getattr(self.processor.tokenizer, "bos_token", None)
        if bos and prompt.startswith(bos):
            kwargs["add_special_tokens"] = False
        if isinstance(image, Video):
            kwargs.update(videos=[image.frames], video_metadata=[image.metadata()], do_sample_frames=False,
                          **self.video_kwargs)
        elif isinstance(image, (list, tuple)):
            kwargs["images"] = [list(image)]
        elif image is not None:
            kwargs["images"] = [image]
        return dict(self.processor(**kwargs))

    def _encode(self, text: str, image: Any | None, index: int) -> Encoded:
        """Process one sample (``image=None``: text only) and find its image (or video) and
        text tokens."""
        prompt, start = self._prompt(text, image)
        modality = "text" if image is None else self._modality_of(image)
        try:
            inputs = self._process(prompt, image)
        except Exception as exc:  # whatever the processor trips on, it is this image
            if image is None:
                raise
            raise AdapterInputError(
                f"sample {index}: the {self.model_type} processor rejected the {modality} "
                f"({self._describe(image)}): {exc}"
            ) from exc
        offsets = inputs.pop("offset_mapping")[0]
        inputs.pop("labels", None)  # training targets some processors add (PaliGemma)
        ids = inputs["input_ids"][0]
        # A video's token id exists: _check_visual saw to it.
        token_id = self.video_token_id if modality == "video" else self.image_token_id
        is_image = torch.eq(ids, int(token_id or 0))
        if image is not None and not bool(is_image.any()):
            raise RuntimeError(f"sample {index}: the processor inserted no {modality} tokens")
        # The processor expands the image placeholder (before the text) into image tokens and
        # markers, so the text is found from the end: only the template's suffix and the
        # processor's own tail follow it.
        end = int(offsets[:, 1].max()) - (len(prompt) - start - len(text)) - len(self.prompt_tail)
        start = end - len(text)
        # A token belongs to the text when its characters overlap the text (zero-width BOS and
        # template markup around the text do not).
        in_text = (offsets[:, 0] < end) & (offsets[:, 1] > start) & ~is_image
        if not bool(in_text.any()):
            raise AdapterInputError(f"sample {index}: the text {text!r} produced no tokens")
        return Encoded(inputs, is_image, in_text)

    def _token_masks(self, joint: Encoded, text: Encoded) -> dict[str, torch.Tensor]:
        """The ``image``, ``joint`` and ``text`` token masks of one sample (on CPU): the joint
        input's image tokens, its image and text tokens, the text-only input's text tokens; every
        token of their input for ``joint`` and ``text`` when ``include_special``. Position 0 of
        either pass is in none of them unless ``count_first_position`` (see :func:`first_position_rule`)."""
        if self.include_special:
            joint_mask, text_mask = torch.ones_like(joint.text), torch.ones_like(text.text)
        else:
            joint_mask, text_mask = joint.image | joint.text, text.text
        masks = {"image": joint.image, "joint": joint_mask, "text": text_mask}
        return masks if self.count_first_position else {name: first_position_rule(mask) for name, mask in masks.items()}


def first_position_rule(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` (a 1-D bool mask over one unpadded input) without position 0, whatever token is
    there. Most LLMs make position 0 an attention sink with massive activations (Xiao et al.
    2023, Sun et al. 2024): its state hardly depends on the token and dominates a spectrum, so
    counting it in one family (no BOS: Qwen's text pass, PaliGemma's first image token) and not
    in another (BOS, a special token left out) would make eRanks unlike across families."""
    out = mask.clone()
    out[0] = False
    return out


def modality_of(visual: Any) -> str:
    """``"video"`` for a :class:`~mm_align.data.video.Video`, ``"images"`` for a list or tuple
    of images, else ``"image"``."""
    return "video" if isinstance(visual, Video) else "images" if isinstance(visual, (list, tuple)) else "image"


def describe_image(image: Any) -> str:
    """Type and size of an image (of a clip, of several images), for error messages."""
    if isinstance(image, Video):
        return f"{len(image)} frames of {image.frames.shape[2]}x{image.frames.shape[1]}"
    if isinstance(image, (list, tuple)):
        return f"{len(image)} images: " + ", ".join(describe_image(one) for one in image)
    size = getattr(image, "size", None)
    if isinstance(size, tuple):
        return f"{type(image).__name__} of size {size[0]}x{size[1]}"
    shape = getattr(image, "shape", None)
    return f"{type(image).__name__} of shape {tuple(shape)}" if shape is not None else type(image).__name__
