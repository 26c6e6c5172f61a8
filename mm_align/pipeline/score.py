"""``score``: a VLM over an image-caption set, per-sample results and a dataset summary.

The one place where a model, data and metrics meet. Samples stream through the adapter in
batches (:mod:`~mm_align.pipeline.scorer`); each sample's states are reduced to scalars at
once, so memory stays flat however large the data set. Results go to a run directory
(:mod:`mm_align.rundir`), appended per batch and resumable, or stay in memory.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mm_align.adapters import load_vlm
from mm_align.adapters.projector import load_projector_state, swap_projector
from mm_align.adapters.representation import normalize_layers
from mm_align.config import LayerSpec, ScoreConfig
from mm_align.data import BadSampleError, Sample, SampleSource, open_dataset
from mm_align.data.audio import AudioLimits
from mm_align.data.images import ImageLimits
from mm_align.data.memory import open_memory
from mm_align.data.video import FrameSampling, Video
from mm_align.pipeline.controls import IMAGE_TRANSFORMS, Transform, make_transform
from mm_align.pipeline.distributed import Workers
from mm_align.pipeline.extra_metrics import ExtraMetrics, extra_summary, mir_layers
from mm_align.pipeline.loading import config_kwargs, hf_kwargs, load_kwargs
from mm_align.pipeline.provenance import (
    file_sha256,
    model_identity,
    model_provenance,
    software_versions,
)
from mm_align.pipeline.reduce import reduce_sample
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.scorer import Reduced, ScoreError, Scorer, score_into
from mm_align.pipeline.selection import select
from mm_align.pipeline.summary import control_differences, diff_erank_summary, summarize
from mm_align.rundir import MemoryRun, RunFiles, owned

__all__ = ["ScoreError", "frame_sampling", "load_adapter", "open_source", "resolve_layers", "run_score"]

DEFAULT_FRAMES = FrameSampling(num_frames=8)
"""A clip's frames for a family that states no default of its own."""

log = logging.getLogger(__name__)


def resolve_layers(layers: LayerSpec, num_hidden_states: int) -> list[int]:
    """The LLM layers to sweep as non-negative ``hidden_states`` indices: none for ``None``,
    every one for ``"all"``, else the given ones plus the last."""
    if layers is None:
        return []
    if layers == "all":
        return list(range(num_hidden_states))
    try:
        return list(normalize_layers(layers, num_hidden_states))  # type: ignore[arg-type]
    except (IndexError, TypeError) as err:
        raise ValueError(str(err)) from None


def open_source(data: Any, config: ScoreConfig) -> SampleSource:
    """The samples of ``data``: a path or hub name, a ``datasets.Dataset``, (image, text) pairs
    or a source opened already."""
    if isinstance(data, SampleSource):
        return data
    if isinstance(data, str | Path):
        return open_dataset(
            data, image_root=config.image_root, image_column=config.image_column,
            text_column=config.text_column, id_column=config.id_column, split=config.split,
            max_pixels=config.max_pixels, streaming=config.streaming,
        )
    return open_memory(data, image_column=config.image_column, text_column=config.text_column,
                       max_pixels=config.max_pixels)


@dataclass(frozen=True)
class TextLimit:
    """What to do with a text longer than ``max_tokens`` tokens of ``tokenizer`` (its own
    tokens, without special ones): ``"refuse"`` it (a bad sample) or ``"truncate"`` it to
    its first ``max_tokens`` tokens (cut at a token boundary, so the kept text is a verbatim
    prefix). A text longer than the model's context would be scored silently out of range
    (and a 21k-token caption costs ~10 GB of activations)."""

    tokenizer: Any
    max_tokens: int
    overflow: str = "refuse"

    @classmethod
    def of(cls, config: ScoreConfig, adapter: Any) -> TextLimit | None:
        """The run's policy: ``max_text_tokens``, else the model's context (None: no limit
        known, which is logged)."""
        limit = config.max_text_tokens or context_length(adapter)
        tokenizer = getattr(getattr(adapter, "processor", None), "tokenizer", None)
        if limit is None or tokenizer is None:
            log.warning("texts are not limited: the model states no context length (set --max-text-tokens)")
            return None
        return cls(tokenizer, limit, config.text_overflow)

    def _count(self, text: str) -> Any:
        return self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)

    def apply(self, text: str) -> tuple[str, dict[str, Any]]:
        """The text to score and what was done to it (fields for the result record)."""
        encoded = self._count(text)
        n = len(encoded["input_ids"])
        if n <= self.max_tokens:
            return text, {}
        if self.overflow == "refuse":
            raise BadSampleError(
                f"text is too long: {n} tokens, more than max_text_tokens = {self.max_tokens} (the "
                "model's context unless set); pass --text-overflow truncate to score its start, or "
                "shorten it"
            )
        kept = text[: encoded["offset_mapping"][self.max_tokens - 1][1]]
        return kept, {"truncated": True, "text_tokens": n,
                      "text_tokens_kept": len(self._count(kept)["input_ids"])}


def audio_limits(config: ScoreConfig, adapter: Any) -> AudioLimits | None:
    """How an audio model's clips are decoded (None for an image model). Controls that change
    images have nothing to change in a clip: refused here, before any sample is scored."""
    if getattr(adapter, "modality", "image") != "audio":
        return None
    image_only = [name for name in config.controls if name in IMAGE_TRANSFORMS]
    if image_only:
        raise ValueError(f"{', '.join(image_only)} change images; an audio model ({adapter.model_type}) "
                         f"takes only the shuffled control")
    return AudioLimits(adapter.sampling_rate, config.max_audio_seconds, config.audio_overflow)


def context_length(adapter: Any) -> int | None:
    """The LLM's context in tokens (``max_position_embeddings`` of the text config), if known."""
    return adapter.context_length


def frame_sampling(config: ScoreConfig, adapter: Any) -> FrameSampling:
    """A clip's frames in this run: ``--num-frames`` or ``--fps``, else the family's default
    (``frame_sampling`` of its adapter), else 8 evenly spread."""
    if config.num_frames is not None or config.fps is not None:
        return FrameSampling(num_frames=config.num_frames, fps=config.fps)
    return getattr(adapter, "frame_sampling", None) or DEFAULT_FRAMES


def _each_image(transform: Transform, index: int, visual: Any, text: str) -> tuple[Any, str]:
    """A control's transform over every image of a sample (each frame of a clip); the text
    is transformed once."""
    if isinstance(visual, Video):
        frames, text = _each_image(transform, index, [Image.fromarray(f) for f in visual.frames], text)
        return dataclasses.replace(visual, frames=np.stack([np.asarray(f) for f in frames])), text
    if not isinstance(visual, list):
        return transform(index, visual, text)
    out = [transform(index, image, text) for image in visual]
    return [image for image, _ in out], out[0][1]


@dataclass
class VLMTask:
    """Score image-text samples with a VLM adapter (the :class:`~mm_align.pipeline.scorer.Task`
    of ``score``); ``transform`` is a control's change of what the model sees, ``images`` and
    ``text_limit`` the run's policies for images and long texts.

    A prepared sample is ``(image, text, notes)``: ``notes`` go into its result record
    (``original_size`` of a resized image; ``truncated``, ``text_tokens``,
    ``text_tokens_kept`` of a truncated text). ``extras``: the ``--metrics`` to compute and
    the states to keep beside the record (:class:`~mm_align.pipeline.scorer.Reduced`)."""

    adapter: Any
    layers: Sequence[int]
    transform: Transform | None = None
    images: ImageLimits | None = None
    text_limit: TextLimit | None = None
    extras: ExtraMetrics | None = None
    frames: FrameSampling | None = None
    audio: AudioLimits | None = None
    """How clips are decoded, for an audio model (then each sample's audio is loaded, not its
    image; the notes gain ``audio_seconds`` and ``audio_truncated``)."""

    def prepare(self, sample: Sample) -> tuple[Any, str, dict[str, Any]]:
        text = sample.check_text()
        media: Any  # a visual input (image, images, clip), or an audio model's waveform
        if self.audio is not None:
            media, notes = sample.load_audio(self.audio)
        else:
            media = sample.load_visual(self.images, self.frames)
            notes = _visual_notes(sample, media)
        if self.transform:
            media, text = _each_image(self.transform, sample.index, media, text)
        if self.text_limit:
            text, cut = self.text_limit.apply(text)
            notes.update(cut)
        return media, text, notes

    def represent(self, prepared: list[tuple[Any, str, dict[str, Any]]]) -> list[Any]:
        images, texts, _ = zip(*prepared)
        return self.adapter.represent_batch(list(images), list(texts), layers=self.layers or None)

    def reduce(self, sample: Sample, prepared: tuple[Any, str, dict[str, Any]],
               rep: Any) -> dict[str, Any] | Reduced:
        key, path = ("image", sample.image_path) if self.audio is None else ("audio", sample.audio_path)
        # `text` is what the model saw: a control may have swapped it, a limit cut it.
        head = {"text": prepared[1], key: str(path) if path else None, **sample.media_paths, **prepared[2],
                **({"source": sample.origin} if sample.origin else {})}
        record = {**head, **reduce_sample(rep, self.layers)}
        if self.extras is None:
            return record
        fields, states = self.extras.of_sample(sample.index, rep)
        record.update(fields)
        return Reduced(record, states) if states else record


def _visual_notes(sample: Sample, visual: Any) -> dict[str, Any]:
    """Record fields about what the model saw: a shrunk image's ``original_size``; for
    several images or a clip, the ``modality`` and (clip) the source ``frames`` kept."""
    if isinstance(visual, Video):
        return {"modality": "video", "frames": list(visual.indices), "video_fps": visual.fps}
    if isinstance(visual, list):
        return {"modality": "images"}
    original = visual.info.get("original_size")
    return {"original_size": list(original)} if original else {}


def _identity(config: ScoreConfig, model: Any, source: SampleSource) -> dict[str, Any]:
    """What must not change when a run is resumed: the settings that change numbers, the
    model's and projector's content, and the data's."""
    return {
        **config.identity(),
        "model": model_identity(model, **config_kwargs(hf_kwargs(config))),
        "projector": file_sha256(config.projector) if config.projector else None,
        "data": source.fingerprint(),
    }


def _extra_runs(config: ScoreConfig) -> list[str]:
    """The runs scored next to the real one: controls, perturbations and the baseline."""
    return [*config.controls, *([config.baseline] if config.baseline else [])]


def _with_controls(results: dict[str | None, ScoreResult]) -> ScoreResult:
    """The real run's result, holding the others as its ``controls``."""
    main = results.pop(None)
    main.controls = {name: result for name, result in results.items() if name is not None}
    return main


def _stores(config: ScoreConfig, workers: Workers) -> dict[str | None, Any]:
    """Run name (None = the real run) -> where its records go."""
    names = _extra_runs(config)
    if config.out is None:
        if workers.world_size > 1:
            raise ValueError("a data-parallel run needs a run directory (out / --out)")
        return {None: MemoryRun(), **{name: MemoryRun() for name in names}}
    root = Path(config.out)
    return {None: RunFiles(root, workers.shard),
            **{name: RunFiles(root / "controls" / name, workers.shard) for name in names}}


def load_adapter(config: ScoreConfig, workers: Workers | None = None) -> Any:
    """The adapter of ``config.model`` loaded with the run's options (device, dtype, hub
    options, prompt, special tokens, vision view); ``workers``: a bare ``cuda`` is then this
    data-parallel process's own GPU."""
    options = load_kwargs(config)
    device = workers.device(options["device"]) if workers else options["device"]
    return load_vlm(str(config.model), **{**options, "device": device},
                    prompt=config.prompt, include_special=config.include_special,
                    vision_view=config.vision_view, max_visual_tokens=config.max_visual_tokens,
                    count_first_position=config.count_first_position, deepstack=config.deepstack)


def _load(config: ScoreConfig, model: Any, workers: Workers,
          projector: dict | None) -> tuple[Any, dict | None]:
    """The adapter (loaded unless given) with the projector file's weights swapped in."""
    if isinstance(model, str | Path):
        adapter = load_adapter(config.replace(model=str(model)), workers)
    else:
        adapter = model
    return adapter, swap_projector(adapter, config.projector, projector) if config.projector else None


def _extras(config: ScoreConfig, sweep: Sequence[int], num_hidden_states: int,
            source: Sequence[Sample]) -> ExtraMetrics | None:
    """What each sample adds for ``--metrics``; MIR's states only for the first
    ``mir_samples`` selected samples (by position in the selection, the same in a fresh and
    a resumed run)."""
    if not config.metrics:
        return None
    keep = frozenset(s.index for s in itertools.islice(source, config.mir_samples)) if "mir" in config.metrics else frozenset()
    return ExtraMetrics(config.metrics, mir_layers(sweep, num_hidden_states), keep, config.mir_text)


def _score_all(config: ScoreConfig, adapter: Any, source: Sequence[Sample], stores: dict,
               workers: Workers, n_total: int, audio: AudioLimits | None) -> None:
    sweep = resolve_layers(config.layers, adapter.num_hidden_states)
    extras = _extras(config, sweep, adapter.num_hidden_states, source)
    images = ImageLimits(config.max_pixels, config.max_aspect_ratio, config.resize_to_max_pixels)
    text_limit = TextLimit.of(config, adapter)
    frames = frame_sampling(config, adapter)

    def mine(index: int) -> bool:
        return index < n_total and workers.owns(index)

    def my_samples() -> Iterable[Sample]:
        return (s for s in itertools.islice(source, n_total) if workers.owns(s.index))

    # Only the shuffled control needs every text up front; texts are small.
    texts = [s.text for s in itertools.islice(source, n_total)] if "shuffled" in config.controls else []
    n_mine = sum(1 for i in range(n_total) if mine(i))
    for name, store in stores.items():
        transform = make_transform(name, texts, config.seed) if name in config.controls else None
        # The baseline scores the same inputs with the LLM re-initialised.
        view = adapter.untrained_llm(config.seed) if name and name == config.baseline else nullcontext(adapter)
        with view as scored:
            task = VLMTask(scored, sweep, transform, images, text_limit, extras, frames, audio)
            score_into(Scorer(task, config.strict, config.num_workers), my_samples, store,
                       owns=mine, n_samples=n_mine, batch_size=config.batch_size,
                       progress=config.progress, desc=name or "score")


def _against_real(config: ScoreConfig, records: dict[str | None, list]) -> dict[str, Any]:
    """The real run's summary fields that compare it with its controls and baseline."""
    real, boot = records[None], {"n_boot": config.n_boot, "seed": config.seed}
    extra: dict[str, Any] = {}
    if config.controls:
        extra["controls"] = control_differences(real, {n: records[n] for n in config.controls}, **boot)
    if config.baseline:
        extra["diff_erank"] = diff_erank_summary(real, records[config.baseline], **boot)
    return extra


def _summaries(config: ScoreConfig, stores: dict, provenance: dict[str, Any]) -> ScoreResult:
    """Summaries of every run (from its results only), written and returned."""
    log.info("summarizing: bootstrap intervals over %d replicates ...", config.n_boot)
    for store in stores.values():  # every shard first: the real run's summary reads the others
        store.merge()
    records = {name: store.results() for name, store in stores.items()}
    out: dict[str | None, ScoreResult] = {}
    for name, store in stores.items():
        errors = store.errors()
        summary = summarize(records[name], len(errors), {**provenance, "control": name},
                            n_boot=config.n_boot, seed=config.seed)
        if config.metrics and records[name]:
            summary["metrics"] = extra_summary(
                config.metrics, records[name], store, knn_k=config.knn_k,
                pooled_features=config.pooled_features, mir_samples=config.mir_samples,
                mir_text=config.mir_text, n_boot=config.n_boot, seed=config.seed)
        if name is None:
            summary.update(_against_real(config, records))
        summary = store.write_summary(summary)
        out[name] = ScoreResult(summary, records[name], errors, out=getattr(store, "root", None))
    return _with_controls(out)


def _reread(config: ScoreConfig) -> ScoreResult:
    """The merged run as the main process wrote it (the other data-parallel workers)."""
    root = Path(config.out)  # type: ignore[arg-type]  # data-parallel runs always have one
    runs = {name: RunFiles(root / "controls" / name if name else root) for name in [None, *_extra_runs(config)]}
    return _with_controls({name: ScoreResult(files.read_summary(), files.results(), files.errors(), out=files.root)
                           for name, files in runs.items()})


def run_score(config: ScoreConfig, model: Any = None, data: Any = None,
              workers: Workers | None = None) -> ScoreResult:
    """Score a VLM over an image-caption set (see :class:`~mm_align.config.ScoreConfig`).

    Args:
        config: every option of the run; ``config.out=None`` keeps the run in memory.
        model: an adapter already loaded, or None to load ``config.model``.
        data: samples already in memory (a ``datasets.Dataset``, (image, text) pairs or an
            opened :class:`~mm_align.data.SampleSource`), or None to open ``config.data``.
        workers: the processes that share the run (default: from the launcher's environment;
            ``Workers()`` scores everything in this process).

    Everything that can be refused is refused before any weights load: the data set (empty,
    malformed), the projector file, and ``out`` (owned by another process, not a run, or a
    run with other settings). The main process owns ``out`` (:func:`mm_align.rundir.owned`)
    until the run ends. Started under ``torchrun`` or ``accelerate launch``, each process scores
    its share and the main process merges them (:mod:`mm_align.pipeline.distributed`); every
    process returns the merged result.

    Raises:
        ValueError: the data set has no samples; the projector file is unreadable.
        ScoreError: no sample could be scored, or ``strict`` and a sample failed.
        RunDirError: ``out`` is in use, not a run, holds a run and ``resume`` is off, or its
            settings differ.
    """
    workers = workers or Workers.from_env()
    torch.manual_seed(config.seed)
    source = open_source(config.data if data is None else data, config)
    chosen = select(source, config.limit, config.sample, config.sample_seed)
    n_total = len(chosen)
    if n_total == 0:
        raise ValueError(f"the data set {config.data} has no samples: nothing to score (check --data "
                         "and its columns)")
    projector = load_projector_state(config.projector) if config.projector else None
    stores = _stores(config, workers)
    model = config.model if model is None else model
    with ExitStack() as held:
        if workers.is_main and config.out is not None:
            held.enter_context(owned(config.out, config.overwrite))  # held until the run is written
        identity = _identity(config, model, source)
        for name, store in stores.items():  # refuse a bad --out before loading any weights
            store.check(config.command, {**identity, "control": name}, config.resume, config.overwrite)
        adapter, projector_info = _load(config, model, workers, projector)
        audio = audio_limits(config, adapter)  # refuses image controls before the run is opened
        frames = frame_sampling(config, adapter)  # the family's default, recorded in config.json
        config = config.replace(num_frames=frames.num_frames, fps=frames.fps)
        workers.barrier()  # nobody writes before every worker has checked the directory
        for name, store in stores.items():
            store.open({"command": config.command, "config": config.to_dict(),
                        "identity": {**identity, "control": name}} if workers.is_main else None)
        _score_all(config, adapter, chosen, stores, workers, n_total, audio)
        workers.barrier()  # every shard is complete
        provenance = _provenance(config, adapter, chosen, source, projector_info, workers, n_total)
        result = _summaries(config, stores, provenance) if workers.is_main else None
        workers.barrier()  # the summary exists for every worker to read
    result = result or _reread(config)
    if result.summary["n_samples"] == 0:
        where = f"; see {Path(config.out) / 'errors.jsonl'}" if config.out else ""
        raise ScoreError(f"none of the {n_total} samples could be scored{where}")
    return result


def _modality(config: ScoreConfig, adapter: Any, chosen: Any) -> dict[str, Any]:
    """What the samples brought besides their text (:attr:`Sample.modality`, each kind once;
    an audio model's: ``["audio"]``), and for audio how it was decoded."""
    if getattr(adapter, "modality", "image") != "audio":
        return {"modality": sorted({sample.modality for sample in chosen})}
    from importlib.metadata import version

    decoder = f"PyAV {version('av')}"
    return {"modality": ["audio"], "audio": {"sampling_rate": adapter.sampling_rate, "decoder": decoder,
                                            "max_seconds": config.max_audio_seconds,
                                            "overflow": config.audio_overflow}}


def _provenance(config: ScoreConfig, adapter: Any, chosen: Any, source: SampleSource,
                projector: dict | None, workers: Workers, n_total: int) -> dict[str, Any]:
    """What produced the run, for its summary."""
    return {
        "model": model_provenance(adapter.model.name_or_path, adapter.model.config),
        "projector": projector,
        "data": {"path": str(Path(config.data).resolve()) if Path(config.data).exists() else config.data,
                 "description": source.describe(), "fingerprint": source.fingerprint()},
        "dtype": str(adapter.dtype).removeprefix("torch."), "prompt": adapter.prompt,
        "include_special": adapter.include_special, "vision_view": adapter.vision_view,
        "count_first_position": adapter.count_first_position, "deepstack": adapter.deepstack,
        "layers": resolve_layers(config.layers, adapter.num_hidden_states),
        "seed": config.seed, "device": str(adapter.device), "n_requested": n_total,
        "max_text_tokens": config.max_text_tokens or context_length(adapter),
        **_modality(config, adapter, chosen),
        "frames": {"num_frames": config.num_frames, "fps": config.fps,
                   "max_frames": frame_sampling(config, adapter).max_frames},
        "max_visual_tokens": getattr(adapter, "max_visual_tokens", None) or context_length(adapter),
        "selection": chosen.description,
        "workers": workers.world_size, "versions": software_versions(),
    }
