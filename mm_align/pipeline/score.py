"""``score``: a VLM over an image-caption set, per-sample results and a dataset summary.

The one place where a model, data and metrics meet. Samples stream through the adapter in
batches (:mod:`~mm_align.pipeline.scorer`); each sample's states are reduced to scalars at
once, so memory stays flat however large the data set. Results go to a run directory
(:mod:`mm_align.rundir`), appended per batch and resumable, or stay in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mm_align.adapters import load_vlm
from mm_align.adapters.projector import swap_projector
from mm_align.adapters.representation import normalize_layers
from mm_align.config import LayerSpec, ScoreConfig
from mm_align.data import Sample, SampleSource, open_dataset
from mm_align.data.memory import open_memory
from mm_align.pipeline.controls import Transform, make_transform
from mm_align.pipeline.distributed import Workers
from mm_align.pipeline.loading import config_kwargs, hf_kwargs, load_kwargs
from mm_align.pipeline.provenance import (
    file_sha256,
    model_identity,
    model_provenance,
    software_versions,
)
from mm_align.pipeline.reduce import reduce_sample
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.scorer import ScoreError, Scorer, score_into
from mm_align.pipeline.selection import select
from mm_align.pipeline.summary import control_differences, diff_erank_summary, summarize
from mm_align.rundir import MemoryRun, RunFiles

__all__ = ["ScoreError", "open_source", "resolve_layers", "run_score"]

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
    """The samples of ``data``: a path or hub name, a ``datasets.Dataset`` or (image, text) pairs."""
    if isinstance(data, str | Path):
        return open_dataset(
            data, image_root=config.image_root, image_column=config.image_column,
            text_column=config.text_column, split=config.split, max_pixels=config.max_pixels,
        )
    return open_memory(data, image_column=config.image_column, text_column=config.text_column,
                       max_pixels=config.max_pixels)


@dataclass
class VLMTask:
    """Score image-text samples with a VLM adapter (the :class:`~mm_align.pipeline.scorer.Task`
    of ``score``); ``transform`` is a control's change of what the model sees."""

    adapter: Any
    layers: Sequence[int]
    transform: Transform | None = None

    def prepare(self, sample: Sample) -> tuple[Any, str]:
        image, text = sample.load()
        return self.transform(sample.index, image, text) if self.transform else (image, text)

    def represent(self, prepared: list[tuple[Any, str]]) -> list[Any]:
        images, texts = zip(*prepared)
        return self.adapter.represent_batch(list(images), list(texts), layers=self.layers or None)

    def reduce(self, sample: Sample, prepared: tuple[Any, str], rep: Any) -> dict[str, Any]:
        path = sample.image_path
        # `text` is what the model saw: a control may have swapped it.
        head = {"text": prepared[1], "image": str(path) if path else None}
        return {**head, **reduce_sample(rep, self.layers)}


def _identity(config: ScoreConfig, model: Any, source: SampleSource) -> dict[str, Any]:
    """What must not change when a run is resumed: the settings that change numbers, the
    model's and projector's content, and the data's."""
    return {
        **config.identity(),
        "model": model_identity(model, **config_kwargs(hf_kwargs(config))),
        "projector": file_sha256(config.projector) if config.projector else None,
        "data": source.fingerprint(),
    }


def _stores(config: ScoreConfig, workers: Workers) -> dict[str | None, Any]:
    """Run name (None = the real run) -> where its records go."""
    names = [*config.controls, *([config.baseline] if config.baseline else [])]
    if config.out is None:
        if workers.world_size > 1:
            raise ValueError("a data-parallel run needs a run directory (out / --out)")
        return {None: MemoryRun(), **{name: MemoryRun() for name in names}}
    root = Path(config.out)
    return {None: RunFiles(root, workers.shard),
            **{name: RunFiles(root / "controls" / name, workers.shard) for name in names}}


def _load(config: ScoreConfig, model: Any, workers: Workers) -> tuple[Any, dict | None]:
    if isinstance(model, str | Path):
        options = load_kwargs(config)
        adapter = load_vlm(str(model), **{**options, "device": workers.device(options["device"])},
                           prompt=config.prompt, include_special=config.include_special)
    else:
        adapter = model
    return adapter, swap_projector(adapter, config.projector) if config.projector else None


def _score_all(config: ScoreConfig, adapter: Any, source: Sequence[Sample], stores: dict,
               workers: Workers, n_total: int) -> None:
    sweep = resolve_layers(config.layers, adapter.num_hidden_states)

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
            score_into(Scorer(VLMTask(scored, sweep, transform), config.strict), my_samples, store,
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
    for store in stores.values():  # every shard first: the real run's summary reads the others
        store.merge()
    records = {name: store.results() for name, store in stores.items()}
    out: dict[str | None, ScoreResult] = {}
    for name, store in stores.items():
        errors = store.errors()
        summary = summarize(records[name], len(errors), {**provenance, "control": name},
                            n_boot=config.n_boot, seed=config.seed)
        if name is None:
            summary.update(_against_real(config, records))
        store.write_summary(summary)
        out[name] = ScoreResult(summary, records[name], errors, out=getattr(store, "root", None))
    main = out.pop(None)
    main.controls = {name: result for name, result in out.items() if name is not None}
    return main


def _reread(config: ScoreConfig) -> ScoreResult:
    """The merged run as the main process wrote it (the other data-parallel workers)."""
    root = Path(config.out)  # type: ignore[arg-type]  # data-parallel runs always have one
    names = [*config.controls, *([config.baseline] if config.baseline else [])]
    runs = {name: RunFiles(root / "controls" / name if name else root) for name in [None, *names]}
    results = {name: ScoreResult(files.read_summary(), files.results(), files.errors(), out=files.root)
               for name, files in runs.items()}
    main = results.pop(None)
    main.controls = {name: r for name, r in results.items() if name is not None}
    return main


def run_score(config: ScoreConfig, model: Any = None, data: Any = None) -> ScoreResult:
    """Score a VLM over an image-caption set (see :class:`~mm_align.config.ScoreConfig`).

    Args:
        config: every option of the run; ``config.out=None`` keeps the run in memory.
        model: an adapter already loaded, or None to load ``config.model``.
        data: samples already in memory (a ``datasets.Dataset`` or (image, text) pairs), or
            None to open ``config.data``.

    Started under ``torchrun`` or ``accelerate launch``, each process scores its share and
    the main process merges them (:mod:`mm_align.pipeline.distributed`); every process
    returns the merged result.

    Raises:
        ScoreError: no sample could be scored, or ``strict`` and a sample failed.
        RunDirError: ``out`` holds a run and ``resume`` is off, or its settings differ.
    """
    workers = Workers.from_env()
    torch.manual_seed(config.seed)
    source = open_source(config.data if data is None else data, config)
    chosen = select(source, config.limit, config.sample, config.sample_seed)
    n_total = len(chosen)
    stores = _stores(config, workers)
    identity = _identity(config, config.model if model is None else model, source)
    for name, store in stores.items():  # refuse a bad --out before loading any weights
        store.check({"identity": {**identity, "control": name}}, config.resume)
    adapter, projector = _load(config, config.model if model is None else model, workers)
    workers.barrier()  # nobody writes before every worker has checked the directory
    for name, store in stores.items():
        store.open({"command": "score", "config": config.to_dict(),
                    "identity": {**identity, "control": name}} if workers.is_main else None)
    _score_all(config, adapter, chosen, stores, workers, n_total)
    workers.barrier()  # every shard is complete
    provenance = {
        "model": model_provenance(adapter.model.name_or_path, adapter.model.config),
        "projector": projector,
        "data": {"path": str(Path(config.data).resolve()) if Path(config.data).exists() else config.data,
                 "description": source.describe(), "fingerprint": source.fingerprint()},
        "dtype": str(adapter.dtype).removeprefix("torch."), "prompt": adapter.prompt,
        "include_special": adapter.include_special, "layers": resolve_layers(config.layers, adapter.num_hidden_states),
        "seed": config.seed, "device": str(adapter.device), "n_requested": n_total,
        "selection": chosen.description,
        "workers": workers.world_size, "versions": software_versions(),
    }
    result = _summaries(config, stores, provenance) if workers.is_main else None
    workers.barrier()  # the summary exists for every worker to read
    result = result or _reread(config)
    if result.summary["n_samples"] == 0:
        where = f"; see {Path(config.out) / 'errors.jsonl'}" if config.out else ""
        raise ScoreError(f"none of the {n_total} samples could be scored{where}")
    return result
