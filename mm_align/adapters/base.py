"""What every VLM adapter shares: :class:`VLMAdapter`, which loads a model, runs the joint,
text-only and (where needed) image-only passes of a batch and returns a :class:`Representation`
per sample. It composes :class:`~mm_align.adapters.encoding.PromptEncoding` (prompts and token
masks) and :class:`~mm_align.adapters.llm_capture.LLMCapture` (batches, forward passes, LLM
hooks).

How the vision stages are found is :mod:`~mm_align.adapters.generic`'s job (probing the
connector and ``get_image_features``); a family file says what is truly its own: module
paths, its vision cut, what stands for the image in a plain prompt, a tiny checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers import AutoProcessor, PreTrainedModel

from mm_align.adapters.encoding import AdapterInputError, Encoded, PromptEncoding, PromptStyle
from mm_align.adapters.llm_capture import LLMCapture, token_states
from mm_align.adapters.modules import (
    DTYPE_KWARG,
    HUB_KWARGS,
    probe_module,
    resolve_dtype,
    seeded_init,
)
from mm_align.adapters.representation import Representation, normalize_layers
from mm_align.constants import DEEPSTACK_READINGS, VISION_VIEWS
from mm_align.data.video import FrameSampling, Video
from mm_align.stages import LLM_STAGES
from mm_align.warn import warn

__all__ = [
    "DEEPSTACK_READINGS",
    "VISION_VIEWS",
    "AdapterInputError",
    "DeepstackReading",
    "Encoded",
    "PromptStyle",
    "VLMAdapter",
    "VisionSplit",
    "VisionView",
]

VisionView = Literal["patches", "merged"]
DeepstackReading = Literal["output", "injected"]

VisionSplit = Callable[[Sequence[Encoded]], list[tuple[torch.Tensor, torch.Tensor]]]
"""Called after a joint pass: per sample, its (vision, projector) rows, each (tokens x dim)."""

Batch = list[tuple[int, Any, str]]
"""Samples of one modality: (position in the caller's batch, visual input, text)."""


class VLMAdapter(PromptEncoding, LLMCapture):
    """Runs a vision-language model on image-text pairs and returns the five Diff-eRank
    representations (:class:`Representation`).

    Per batch: one forward pass of the joint (image + text) input, one of the text-only input,
    both right-padded, under ``torch.inference_mode()``. Hooks copy the vision stages and the
    LLM hidden states of the requested layers; ``output_hidden_states`` is never used.

    Prompts (``prompt=``):

    - ``"plain"`` (default): the image placeholder first, the text right after, no template.
      The image tokens are then a causal prefix: their states do not depend on the text, so the
      ``"image"`` stage is the LLM's view of the image alone.
    - ``"chat"``: the processor's chat template with one user turn ``[image, text]`` (text-only
      pass: ``[text]``), no generation prompt.

    Masks: ``"image"`` = the image placeholder tokens (always exactly those: one per row of
    what ``get_image_features`` returns); ``"text"`` / ``"joint"`` = the tokens whose characters
    overlap the user text (joint: plus the image tokens). BOS, vision start/end markers, tile
    and row markers and template markup are left out, unless ``include_special=True``, which
    makes ``"text"`` and ``"joint"`` cover every token of their input. Position 0 of a pass is
    never counted, whatever token it holds (a BOS, a marker, the first text token of a family
    without BOS, PaliGemma's first image token): most LLMs make it an attention sink
    (:func:`~mm_align.adapters.encoding.first_position_rule`); ``count_first_position=True``
    counts it like any other token (what mm-align did before this rule).

    ``deepstack`` (families that add vision features inside the LLM, Qwen3-VL): what the
    captured layers 1..k hold at the image tokens, ``"output"`` (default) the decoder block's
    output as ``output_hidden_states`` gives it, ``"injected"`` that output plus the features
    added after it, i.e. the input of the next block. Other layers read the same either way.

    ``vision_view`` (``"patches"`` or ``"merged"``): the rows of the ``"vision"`` stage, one per
    vision-encoder patch, or as the connector's first learned map sees them after it groups
    patches (see :mod:`~mm_align.adapters.generic`).
    """

    model_type: ClassVar[str] = ""
    """The config ``model_type`` this adapter serves; set by ``@register``."""
    modality: ClassVar[str] = "image"
    """What a sample brings besides its text (``"image"``; ``"audio"`` for
    :class:`~mm_align.adapters.audio.GenericAudioAdapter`): the data layer loads that, the
    chat template gets a content item of that type."""
    placeholder_config_keys: ClassVar[tuple[str, ...]] = ("image_token_id", "image_token_index")
    """Config fields holding the placeholder token id, newest name first."""
    model_class: ClassVar[type[PreTrainedModel]]
    text_model_paths: ClassVar[tuple[str, ...]] = ("model.language_model", "language_model")
    """Candidate paths of the LLM (newest layout first); a CausalLM there is unwrapped."""
    projector_paths: ClassVar[tuple[str, ...]] = ()
    """Candidate paths of the connector (projector) between vision tower and LLM."""
    image_prefix_is_image_only: ClassVar[bool] = True
    """Whether the joint pass's states at the image tokens equal those of the image seen alone
    (the image tokens never attend to the text). When False (prefix-LM attention, as in
    PaliGemma), the ``"image"`` stage comes from a pass of its own over the image prefix."""
    vision_views: ClassVar[tuple[str, ...]] = ("patches",)
    """The values of ``vision_view`` this family offers; the first is its default."""
    prompt_styles: ClassVar[tuple[str, ...]] = ("plain", "chat")
    """The prompt styles this family offers (``chat`` needs a chat template)."""
    max_images_per_sample: ClassVar[int | None] = 1
    """How many images one sample may hold (None: as many as the context takes)."""
    frame_sampling: ClassVar[FrameSampling | None] = None
    """The family's default frames of a clip (``--num-frames`` / ``--fps`` override it);
    None: the family takes no video."""
    video_kwargs: ClassVar[dict[str, Any]] = {}
    """What the processor is told besides the frames when it gets a video."""
    example_id: ClassVar[str] = ""
    """A hub checkpoint of this family, for ``mm-align families``."""
    prompt_tail: ClassVar[str] = ""
    """What the processor appends after the prompt (PaliGemma: a newline)."""
    deepstack_readings: ClassVar[tuple[str, ...]] = ("output",)
    """The values of ``deepstack`` this family offers (``"injected"``: it adds vision features
    after some decoder blocks)."""

    def __init__(
        self,
        model: PreTrainedModel,
        processor: Any,
        *,
        prompt: PromptStyle = "plain",
        include_special: bool = False,
        vision_view: VisionView | None = None,
        max_visual_tokens: int | None = None,
        count_first_position: bool = False,
        deepstack: DeepstackReading = "output",
    ) -> None:
        if deepstack not in DEEPSTACK_READINGS:
            raise ValueError(f"deepstack must be one of {list(DEEPSTACK_READINGS)}, not {deepstack!r}")
        if deepstack not in self.deepstack_readings:
            raise ValueError(f"{self.model_type or type(self).__name__} adds no deepstack features inside its LLM; "
                             f"deepstack={deepstack!r} applies to families that do (qwen3_vl)")
        if prompt not in ("plain", "chat"):
            raise ValueError(f"prompt must be 'plain' or 'chat', not {prompt!r}")
        if prompt not in self.prompt_styles:
            raise ValueError(f"{self.model_type} offers the prompt styles {list(self.prompt_styles)}, not {prompt!r}")
        view: str = vision_view or self.vision_views[0]
        if view not in self.vision_views:
            raise ValueError(
                f"vision_view {view!r} is not offered by {self.model_type or type(self).__name__}; "
                f"it offers {list(self.vision_views)}"
            )
        self.model = model.eval()
        self.processor = processor
        self.prompt = prompt
        self.include_special = include_special
        self.count_first_position = count_first_position
        self.deepstack: str = deepstack
        self.vision_view: str = view
        self.max_visual_tokens = max_visual_tokens
        """A sample with more image or video tokens is refused (None: the LLM's context)."""
        config = model.config
        if getattr(config, "mm_align_tiny", None):
            warn(f"{config.mm_align_tiny}: this checkpoint was built by `mm-align tiny`")
        self.projector: Any = probe_module(model, self.projector_paths, "projector")
        """The connector module: what it makes of the vision rows is the ``"projector"`` stage."""
        text_model: Any = probe_module(model, self.text_model_paths, "language model")
        if not hasattr(text_model, "layers") and hasattr(text_model, "model"):
            text_model = text_model.model  # 4.5x LLaVA keeps a whole CausalLM here
        self.language_model: nn.Module = text_model
        """The LLM's decoder stack (embeddings, layers, final norm), without the LM head."""
        self._decoder_layers: Any = probe_module(text_model, ("layers",), "decoder layers")
        self._final_norm = probe_module(text_model, ("norm", "final_layernorm", "embedding_norm"), "final norm")
        # The placeholder of this modality (older configs call it image_token_index); the
        # attributes keep the image names whatever the modality (one mask code for all).
        token_id = next((getattr(config, key) for key in self.placeholder_config_keys
                         if getattr(config, key, None) is not None), None)
        if token_id is None:
            raise AttributeError(f"the config has none of {list(self.placeholder_config_keys)}")
        self.image_token_id = int(token_id)
        self.image_token: str = getattr(processor, f"{self.modality}_token")
        video_id = getattr(config, "video_token_id", None)
        video_id = video_id if video_id is not None else getattr(config, "video_token_index", None)
        self.video_token_id = None if video_id is None else int(video_id)
        self.video_token = getattr(processor, "video_token", None)
        tokenizer = processor.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad_id or 0)  # padded positions are masked out, any id will do

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options this adapter was built with (to build another one alike)."""
        return {"prompt": self.prompt, "include_special": self.include_special, "vision_view": self.vision_view,
                "max_visual_tokens": self.max_visual_tokens,
                "count_first_position": self.count_first_position, "deepstack": self.deepstack}

    @classmethod
    def takes_video(cls) -> bool:
        """Whether this family scores video clips."""
        return cls.frame_sampling is not None

    @property
    def context_length(self) -> int | None:
        """The LLM's context in tokens (``max_position_embeddings`` of the text config), if known."""
        config = self.model.config
        text_config = getattr(config, "text_config", None) or config
        value = getattr(text_config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    @classmethod
    def taps(cls) -> dict[str, str]:
        """Where each stage is read, in words (``vision``, ``projector``; ``merged`` when that
        view is offered), for ``mm-align families``."""
        return {"vision": "(family-defined)", "projector": "(family-defined)"}

    # ---- construction -------------------------------------------------------------------

    @contextmanager
    def untrained_llm(self, seed: int = 0) -> Iterator[VLMAdapter]:
        """An adapter over this model with its LLM re-initialised from its config (seeded),
        vision tower and projector untouched: the baseline of a VLM's Diff-eRank.

        The trained LLM is put back when the context exits. Costs the memory of a second
        LLM on the model's device while it lasts; it is built there directly, module by
        module, in the model's dtype (:func:`~mm_align.adapters.modules.seeded_init`), so CPU
        RAM holds one weight matrix at a time, not a float32 copy of the LLM. Its weights are
        those of ``type(llm)(config)`` under ``torch.manual_seed(seed)``, on any device. Not
        available for models spread with a ``device_map``.
        """
        if getattr(self.model, "hf_device_map", None):
            raise ValueError("the untrained baseline does not support models loaded with a device_map")
        trained = self.language_model
        name = next((n for n, m in self.model.named_modules() if m is trained), None)
        if name is None:
            raise RuntimeError("the LLM is swapped out already (nested untrained_llm?)")
        parent_name, _, attr = name.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        fresh = seeded_init(type(trained), trained.config, seed, device=self.device, dtype=self.dtype)
        fresh.eval()
        setattr(parent, attr, fresh)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the random-weights note was given already
                yield type(self)(self.model, self.processor, **self.options)
        finally:
            setattr(parent, attr, trained)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        prompt: PromptStyle = "plain",
        include_special: bool = False,
        vision_view: VisionView | None = None,
        max_visual_tokens: int | None = None,
        count_first_position: bool = False,
        deepstack: DeepstackReading = "output",
        **hf_kwargs: Any,
    ) -> VLMAdapter:
        """Load model and processor with the family's real classes (``from_pretrained``).
        ``hf_kwargs`` go to the model's ``from_pretrained`` (those in ``revision``,
        ``cache_dir``, ``token``, ``local_files_only``, ``trust_remote_code`` also to the
        processor's). The model is moved to ``device`` unless a ``device_map`` is given."""
        shared = {key: hf_kwargs[key] for key in HUB_KWARGS if key in hf_kwargs}
        model = cls.model_class.from_pretrained(
            path_or_id, **{DTYPE_KWARG: resolve_dtype(dtype)}, **hf_kwargs
        )
        if "device_map" not in hf_kwargs:
            model = model.to(device)
        processor = AutoProcessor.from_pretrained(path_or_id, **shared)
        return cls(model, processor, prompt=prompt, include_special=include_special, vision_view=vision_view,
                   max_visual_tokens=max_visual_tokens, count_first_position=count_first_position,
                   deepstack=deepstack)

    @classmethod
    def build_tiny(cls, directory: str | Path, seed: int = 0) -> Path:
        """Save a tiny RANDOM-WEIGHT checkpoint of this family (model + processor) to
        ``directory``, loadable offline with ``from_pretrained`` / ``load_vlm``."""
        raise NotImplementedError(f"{cls.__name__} cannot build a tiny checkpoint")

    # ---- what a family provides ---------------------------------------------------------

    def _vision_capture(self, modality: str = "image") -> AbstractContextManager[VisionSplit]:
        """A context in which one joint forward pass of samples of ``modality`` records the
        vision stages; it yields the function that cuts them per sample afterwards."""
        raise NotImplementedError

    # ---- public API ---------------------------------------------------------------------

    def represent(self, image: Any, text: str, layers: Sequence[int] | None = None) -> Representation:
        """The five representations of one sample (see :meth:`represent_batch`)."""
        return self.represent_batch([image], [text], layers=layers)[0]

    def represent_batch(
        self, images: Sequence[Any], texts: Sequence[str], layers: Sequence[int] | None = None
    ) -> list[Representation]:
        """One :class:`Representation` per (visual input, text) pair, equal to :meth:`represent`
        one at a time up to float round-off (right padding, causal attention).

        ``images``: per sample, a loaded PIL image (or an array / tensor the processor takes),
        a list of them (several images, in order: ``max_images_per_sample``), or a
        :class:`~mm_align.data.video.Video` (families with ``frame_sampling``). Samples of
        each modality (clips: of each frame count and size) run as a batch of their own.
        ``layers``: extra LLM layers to capture, in the ``output_hidden_states`` convention;
        the last is always captured. Each stage is (tokens x dim): ``"vision"`` (patches x
        vision width), ``"projector"`` and ``"image"`` (image or video tokens x LLM width;
        several images: all of them, in order), ``"text"`` (text tokens x LLM width),
        ``"joint"`` (image + text tokens x LLM width). Raises :class:`AdapterInputError` for an
        empty text, a visual input the processor rejects, or more visual tokens than
        ``max_visual_tokens``.
        """
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts")
        wanted = normalize_layers(layers, self.num_hidden_states)
        groups: dict[tuple[str, tuple[int, ...]], Batch] = {}
        for index, (visual, text) in enumerate(zip(images, texts)):
            visual = self._input_visual(visual, index)
            self._check_text(text, index)
            # Clips batch with clips of their shape only: some models (LLaVA-OneVision) take a
            # batch's frames as one tensor, where padded frames would count as frames.
            shape = tuple(visual.frames.shape) if isinstance(visual, Video) else ()
            groups.setdefault((self._modality_of(visual), shape), []).append((index, visual, text))
        out: dict[int, Representation] = {}
        for (modality, _), batch in groups.items():
            out.update(zip((index for index, _, _ in batch), self._represent_group(modality, batch, wanted)))
        return [out[index] for index in range(len(images))]

    def _represent_group(self, modality: str, batch: Batch, wanted: Sequence[int]) -> list[Representation]:
        """:meth:`represent_batch` for samples of one modality."""
        joint = [self._encode(text, visual, index) for index, visual, text in batch]
        for (index, _, _), sample in zip(batch, joint):
            self._check_visual_tokens(int(sample.image.sum()), modality, index)
        text_only = [self._encode(text, None, index) for index, _, text in batch]

        with self._vision_capture(modality) as split_vision:
            joint_got = self._forward(self._collate([sample.inputs for sample in joint]), wanted)
        vision = split_vision(joint)
        text_got = self._forward(self._collate([sample.inputs for sample in text_only]), wanted)
        image_got = joint_got
        if not self.image_prefix_is_image_only:
            # Image tokens that see the text: the image alone needs a pass of its own.
            image_got = self._forward(self._collate([sample.image_prefix().inputs for sample in joint]), wanted)

        reps = []
        for b, (j, t, (vision_rows, projector_rows)) in enumerate(zip(joint, text_only, vision)):
            if int(j.image.sum()) != projector_rows.shape[0]:
                raise RuntimeError(
                    f"sample {batch[b][0]}: {int(j.image.sum())} {modality} tokens but "
                    f"{projector_rows.shape[0]} projector rows; the adapter does not match this model"
                )
            masks = {name: mask.to(self.device) for name, mask in self._token_masks(j, t).items()}
            empty = [stage for stage in LLM_STAGES if not bool(masks[stage].any())]
            if empty:
                raise AdapterInputError(f"sample {batch[b][0]}: no {empty[0]} token after position 0 (the text is one token "
                                        "at the start of its pass; count_first_position=True counts it)")
            passes = {"image": (image_got, j.length), "joint": (joint_got, j.length), "text": (text_got, t.length)}
            llm = {stage: token_states(passes[stage][0], b, passes[stage][1], masks[stage], wanted)
                   for stage in LLM_STAGES}
            # The few joint-pass rows the masks leave out: Representation.joint_sequence (MIR).
            joint_rest = token_states(joint_got, b, j.length, ~masks["joint"], wanted)
            reps.append(
                Representation(
                    vision=vision_rows,
                    projector=projector_rows,
                    llm=llm,
                    num_hidden_states=self.num_hidden_states,
                    masks=masks,
                    inputs={"joint": self._to_model(j.inputs), "text": self._to_model(t.inputs)},
                    joint_rest=joint_rest,
                )
            )
        return reps

    def _check_visual_tokens(self, n: int, modality: str, index: int) -> None:
        """Refuse a sample with more visual tokens than the limit (that sample's error)."""
        limit = self.max_visual_tokens or self.context_length
        if limit is not None and n > limit:
            raise AdapterInputError(
                f"sample {index}: {n} {modality} tokens, more than max_visual_tokens = {limit} (the "
                "model's context unless set); take fewer frames (--num-frames / --fps) or fewer or "
                "smaller images"
            )
