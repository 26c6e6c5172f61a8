"""``score``: a VLM over an image-caption set, per-sample results and a dataset summary.

The one place where a model, data and metrics meet. Samples stream through the adapter in
batches; each sample's states are reduced to scalars at once, so memory stays flat however
large the data set. Results are appended per batch and the run can be resumed.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mm_align.adapters import load_vlm
from mm_align.adapters.representation import normalize_layers
from mm_align.adapters.projector import swap_projector
from mm_align.data import DEFAULT_MAX_PIXELS, BadSampleError, Sample, open_dataset
from mm_align.pipeline.controls import (
    CONTROLS,
    PERTURBATIONS,
    Transform,
    make_transform,
)
from mm_align.pipeline.distributed import Workers
from mm_align.pipeline.provenance import model_provenance, software_versions
from mm_align.pipeline.reduce import MetricError, reduce_sample
from mm_align.pipeline.runfiles import SUMMARY, RunFiles
from mm_align.pipeline.summary import diff_erank_summary, format_table, summarize
from mm_align.report import write_report

log = logging.getLogger(__name__)


class ScoreError(RuntimeError):
    """A run could not produce any result (every sample failed, or --strict hit a bad one)."""


def _error(sample: Sample, stage: str, reason: str) -> dict[str, Any]:
    return {"id": sample.id, "index": sample.index, "stage": stage, "reason": reason}


def _layer_list(layers: str) -> str | list[int]:
    """``"all"``, or the integers of ``"0,8,-1"``."""
    if layers.strip() == "all":
        return "all"
    try:
        return [int(v) for v in layers.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--layers takes 'all' or comma-separated integers, not {layers!r}") from None


def _parse_layers(layers: str | Sequence[int] | None, num_hidden_states: int) -> list[int]:
    """LLM layers to sweep as non-negative indices (hidden_states convention).

    ``None`` = no sweep (the last layer only, recorded anyway); ``"all"`` = every hidden
    state; else indices, negative ones counted from the end. A sweep always includes the
    last layer.
    """
    if layers is None:
        return []
    if layers == "all":
        return list(range(num_hidden_states))
    try:
        return list(normalize_layers(layers, num_hidden_states))
    except (IndexError, TypeError) as err:
        raise ValueError(str(err)) from None


class _Scorer:
    """Runs batches through an adapter and turns them into result and error records."""

    def __init__(self, adapter: Any, layers: list[int], strict: bool) -> None:
        self.adapter, self.layers, self.strict = adapter, layers, strict

    def _fail(self, sample: Sample, stage: str, reason: str) -> dict[str, Any]:
        if self.strict:
            raise ScoreError(f"sample {sample.id!r} (index {sample.index}) failed at {stage}: {reason}")
        return _error(sample, stage, reason)

    def _record(self, sample: Sample, text: str, rep: Any) -> tuple[dict | None, dict | None]:
        try:
            record = reduce_sample(rep, self.layers)
        except MetricError as err:
            return None, self._fail(sample, "metric", str(err))
        path = sample.image_path
        # `text` is what the model saw: a control may have swapped it.
        head = {"id": sample.id, "index": sample.index, "text": text,
                "image": str(path) if path else None}
        return {**head, **record}, None

    def _represent(self, loaded: list[tuple[Sample, Any, str]]) -> list[tuple[dict | None, dict | None]]:
        try:
            reps = self.adapter.represent_batch(
                [image for _, image, _ in loaded], [text for _, _, text in loaded],
                layers=self.layers or None,
            )
        except (ValueError, RuntimeError) as err:
            if len(loaded) > 1:
                # One bad sample must not cost its batch-mates: isolate it.
                return [out for item in loaded for out in self._represent([item])]
            sample = loaded[0][0]
            return [(None, self._fail(sample, "model", f"{type(err).__name__}: {err}"))]
        return [self._record(sample, text, rep) for (sample, _, text), rep in zip(loaded, reps)]

    def batch(
        self, samples: Sequence[Sample], transform: Transform | None
    ) -> tuple[list[dict], list[dict]]:
        """Score one batch: (result records, error records), together covering every sample."""
        results, errors, loaded = [], [], []
        for sample in samples:
            try:
                image, text = sample.load()
            except BadSampleError as err:
                errors.append(self._fail(sample, "load", err.reason))
                continue
            if transform is not None:
                image, text = transform(sample.index, image, text)
            loaded.append((sample, image, text))
        for result, error in self._represent(loaded) if loaded else []:
            (results if result else errors).append(result or error)
        return results, errors


def _score_into(
    scorer: _Scorer,
    samples: Callable[[], Iterable[Sample]],
    mine: Callable[[int], bool],
    n_samples: int,
    files: RunFiles,
    transform: Transform | None,
    batch_size: int,
    progress: bool,
    desc: str,
) -> None:
    """Score the samples not yet in ``files``, appending one batch at a time.

    ``samples`` is called to stream this worker's share of the data set afresh: only a
    batch of samples (and, for in-memory data sets, their encoded images) is held at once.
    ``mine(index)`` tells whether a sample index is in that share (``n_samples`` of them).
    """
    done = files.done_ids()
    n_done = sum(1 for index in done.values() if mine(index))
    if n_done:
        log.info("%s: resuming, %d of %d samples already done", desc, n_done, n_samples)
    todo = (s for s in samples() if s.id not in done)
    with tqdm(total=n_samples - n_done, desc=desc, unit="sample", disable=not progress) as bar:
        while chunk := list(itertools.islice(todo, batch_size)):
            results, errors = scorer.batch(chunk, transform)
            files.append(results, errors)
            bar.update(len(chunk))


def score(
    model: str | Path | Any,
    data: str | Path,
    out: str | Path,
    *,
    batch_size: int = 8,
    limit: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    device_map: str | None = None,
    layers: str | Sequence[int] | None = None,
    prompt: str = "plain",
    include_special: bool = False,
    seed: int = 0,
    strict: bool = False,
    controls: Sequence[str] = (),
    projector: str | Path | None = None,
    baseline: str | None = None,
    image_root: str | Path | None = None,
    image_column: str | None = None,
    text_column: str | None = None,
    split: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    n_boot: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a VLM over an image-caption set and write a run directory.

    Started under ``torchrun`` or ``accelerate launch``, each process scores its share of
    the samples and the main process merges them (see :mod:`mm_align.pipeline.distributed`).

    Args:
        model: a checkpoint path or hub id (loaded with :func:`mm_align.load_vlm`), or an
            adapter already loaded.
        data: a data set :func:`mm_align.data.open_dataset` understands.
        out: the run directory (see docs/ARCHITECTURE.md for its files).
        batch_size: samples per forward pass; results do not depend on it.
        limit: score only the first ``limit`` samples.
        resume: continue the run in ``out``: samples already recorded are skipped.
        device, dtype: where and in which precision the model runs (``cuda`` under a
            launcher means each process's own GPU).
        device_map: e.g. ``"auto"``: spread a model too large for one device over all
            visible ones (accelerate); ``device`` is then ignored.
        layers: extra LLM layers to record: ``"all"``, ``"0,8,-1"`` or a list.
        prompt: ``"plain"`` (image then text, no template) or ``"chat"``.
        include_special: count special and template tokens in the LLM stages.
        seed: seeds torch, the controls and the bootstrap.
        strict: stop at the first bad sample instead of recording it.
        controls: names from :data:`CONTROLS` or :data:`PERTURBATIONS`, each scored after
            the real run into ``out/controls/<name>``.
        projector: a connector checkpoint (safetensors or LLaVA ``mm_projector.bin``) to swap
            into the model before scoring.
        baseline: ``"untrained"``: also score with the LLM randomly re-initialised (seeded)
            into ``out/controls/untrained`` and add the LLM stages' Diff-eRank to the summary.
        image_root, image_column, text_column, split, max_pixels: passed to
            ``open_dataset``.
        n_boot: bootstrap replicates of the 95% intervals.
        progress: show progress bars.

    Returns:
        the summary of the real run (also written to ``out/summary.json``).

    Raises:
        ScoreError: no sample could be scored, or ``strict`` and a sample failed.
        RunDirError: ``out`` holds a run and ``resume`` is off, or its settings differ.
    """
    unknown = [c for c in controls if c not in CONTROLS and c not in PERTURBATIONS]
    if unknown:
        raise ValueError(
            f"unknown control {unknown[0]!r}; choose from {', '.join([*CONTROLS, *PERTURBATIONS])}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if baseline not in (None, "untrained"):
        raise ValueError(f"unknown baseline {baseline!r}; the only one is 'untrained'")
    if isinstance(layers, str):  # bad syntax fails now, not after loading the model
        layers = _layer_list(layers)
    workers = Workers.from_env()
    torch.manual_seed(seed)
    source = open_dataset(
        data, image_root=image_root, image_column=image_column, text_column=text_column,
        split=split, max_pixels=max_pixels,
    )
    n_total = len(source) if limit is None else min(limit, len(source))

    def mine(index: int) -> bool:
        return index < n_total and workers.owns(index)

    def my_samples() -> Iterable[Sample]:
        return (s for s in itertools.islice(source, n_total) if workers.owns(s.index))

    if isinstance(model, str | Path):
        hf_kwargs = {"device_map": device_map} if device_map else {}
        adapter = load_vlm(str(model), device=workers.device(device), dtype=dtype, prompt=prompt,
                           include_special=include_special, **hf_kwargs)
    else:
        adapter = model
    projector_info = swap_projector(adapter, projector) if projector else None
    sweep = _parse_layers(layers, adapter.num_hidden_states)
    identity = {
        "model": model_provenance(adapter.model.name_or_path, adapter.model.config),
        "projector": projector_info,
        "data": {"path": str(Path(data).resolve()) if Path(data).exists() else str(data),
                 "description": source.describe(), "fingerprint": source.fingerprint()},
        "dtype": str(adapter.dtype).replace("torch.", ""),
        "prompt": adapter.prompt,
        "include_special": adapter.include_special,
        "layers": sweep,
        "seed": seed,
    }
    extra = [*controls, *([baseline] if baseline else [])]
    runs = {None: Path(out), **{name: Path(out) / "controls" / name for name in extra}}
    for name, root in runs.items():
        RunFiles(root).check({**identity, "control": name}, resume)
    workers.barrier()  # nobody writes before every worker has checked the directory

    # Only the shuffled control needs every text up front; texts are small.
    texts = [s.text for s in itertools.islice(source, n_total)] if "shuffled" in controls else []
    n_mine = sum(1 for i in range(n_total) if mine(i))
    for name, root in runs.items():
        files = RunFiles(root, workers.shard)
        files.open({**identity, "control": name} if workers.is_main else None)
        transform = make_transform(name, texts, seed) if name in controls else None
        # The baseline scores the same inputs with the LLM re-initialised.
        model_view = adapter.untrained_llm(seed) if name and name == baseline else nullcontext(adapter)
        with model_view as scored:
            _score_into(_Scorer(scored, sweep, strict), my_samples, mine, n_mine, files,
                        transform, batch_size, progress, name or "score")
    workers.barrier()  # every shard is complete

    if workers.is_main:
        for root in runs.values():
            RunFiles(root).merge()
        for name, root in runs.items():
            files = RunFiles(root)
            provenance = {**identity, "control": name, "device": str(adapter.device),
                          "n_requested": n_total, "workers": workers.world_size,
                          "versions": software_versions()}
            results = files.results()
            run_summary = summarize(results, len(files.errors()), provenance,
                                    n_boot=n_boot, seed=seed)
            if name is None and baseline:
                run_summary["diff_erank"] = diff_erank_summary(
                    results, RunFiles(runs[baseline]).results(), n_boot=n_boot, seed=seed
                )
            files.write_summary(run_summary)
        try:
            write_report(out)
        except Exception:  # the scores are safe on disk; a plotting failure must not hide them
            log.exception("could not write the report; rebuild it with `mm-align report %s`", out)
    workers.barrier()  # the summary exists for every worker to return
    summary = json.loads((Path(out) / SUMMARY).read_text(encoding="utf-8"))
    if summary["n_samples"] == 0:
        raise ScoreError(
            f"none of the {n_total} samples could be scored; see {Path(out) / 'errors.jsonl'}"
        )
    return summary


__all__ = ["ScoreError", "format_table", "score"]
