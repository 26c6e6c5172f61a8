"""``Probe``: a fixed probe set scored on a live model, while it trains, as flat scalars.

>>> probe = Probe("data/sample", limit=8)                        # doctest: +SKIP
>>> probe(model, processor, step=500)                            # doctest: +SKIP
{'mm_align/erank_vision': 12.3, ..., 'mm_align/image_text_alignment': 0.41}

Each call is an ordinary ``score`` run (:func:`~mm_align.pipeline.score.run_score`, the same
numbers as ``mm_align.score`` of a checkpoint saved at that moment) on the model object
itself, wrapped in its family's adapter without reloading. The model is borrowed
(:func:`~mm_align.pipeline.live.borrowed`): unwrapped from DDP / DeepSpeed / accelerate,
measured without gradients and with autocast off, then handed back with its training mode,
random generators and autocast state as they were, so the training goes on bit for bit.

With ``out=DIR`` each call is also a run in ``DIR/members/step-N`` and ``DIR/sweep.json`` is
rewritten after it: ``mm-align report DIR`` draws every metric against the step, with its
95 % interval, like a checkpoint sweep.

Several processes (``torchrun``, ``accelerate launch``): only the main process scores, on
the whole probe set, and returns the scalars; the others return ``{}`` at once and wait for
it at their next collective operation (a gradient all-reduce), so keep the probe set small
enough for the launcher's timeout.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mm_align.adapters import adapter_class
from mm_align.config import DEFAULT_STEP_FROM, ScoreConfig, SweepConfig
from mm_align.data.memory import IN_MEMORY
from mm_align.pipeline.distributed import Workers
from mm_align.pipeline.live import borrowed
from mm_align.pipeline.score import open_source, run_score
from mm_align.pipeline.sweep import Member, extra_scalars, step_of, summarize_sweep
from mm_align.rundir import MEMBERS, RunDirError, is_finished, member_dir, write_series
from mm_align.stages import METRICS

__all__ = ["PREFIX", "Probe", "probe_scalars"]

log = logging.getLogger(__name__)

PREFIX = "mm_align/"
"""What every scalar name of the probe begins with (a tracker's group)."""


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def probe_scalars(summary: Mapping[str, Any], prefix: str = PREFIX) -> dict[str, float]:
    """A run's ``summary.json`` as the probe's flat scalars for a logger: ``erank_vision`` ...
    ``erank_joint`` (dataset eRanks), ``image_reduction_ratio``, ``image_text_alignment``,
    the ``--metrics`` (``rankme_STAGE``, ``cka``, ``knn``, ``mir``) and, when layers were
    swept, ``image_text_alignment_layerL``; each name after ``prefix``. Values that are not
    finite numbers (a ratio of a degenerate set) are left out.

    The names are the metric keys of runs and sweeps (``METRICS``, the sweep page's columns),
    so a tracker's curve and the series folder's trend carry one name. This is the one flat
    view of a summary."""
    eranks = summary.get("erank") or {}
    raw = {key: eranks.get(key.removeprefix("erank_")) if key.startswith("erank_") else summary.get(key)
           for key in METRICS}
    raw.update(extra_scalars(summary.get("metrics") or {})[0])
    per_layer = (summary.get("layers") or {}).get("image_text_alignment") or {}
    raw.update({f"image_text_alignment_layer{layer}": v for layer, v in per_layer.items()})
    return {prefix + key: v for key, value in raw.items() if (v := _finite(value)) is not None}


class Probe:
    """Score a fixed probe set on a live model (see the module doc).

    Args:
        data: any ``mm-align score --data`` form (a path or hub name), a
            ``datasets.Dataset`` or ``(PIL.Image, str)`` pairs; opened (and checked) once, here.
        processor: the model's processor, for calls that give none; default: the one saved
            with the model (``AutoProcessor.from_pretrained(model.name_or_path)``, loaded once).
        out: a series folder; each call adds ``OUT/members/step-N`` and rewrites
            ``OUT/sweep.json``. A step probed again (training resumed from a checkpoint)
            replaces its run.
        options: any :class:`~mm_align.config.ScoreConfig` field that concerns scoring
            (``limit``, ``sample``, ``layers``, ``metrics``, ``batch_size``, ``prompt``,
            ``n_boot``, ``seed``, ...).

    Raises:
        TypeError: an unknown option.
        ValueError: a bad option value, or data without samples.
        RunDirError: ``out`` exists and is not a series folder.
    """

    def __init__(self, data: Any, *, processor: Any = None, out: str | Path | None = None,
                 **options: Any) -> None:
        named = isinstance(data, str | Path)
        self.config = ScoreConfig.from_options(**{
            "model": "live model", "data": str(data) if named else IN_MEMORY, "out": None,
            "progress": False, **options})
        self.source = open_source(data, self.config)
        if len(self.source) == 0:
            raise ValueError(f"the probe set {self.config.data} has no samples")
        self.processor = processor
        self.out = None if out is None else Path(out)
        if self.out is not None:
            _check_series_folder(self.out)
        self.calls = 0

    def __call__(self, model: Any, processor: Any = None, *, step: int | None = None) -> dict[str, float]:
        """Score the probe set on ``model`` (a VLM of a served family, possibly wrapped for
        parallel training) at training step ``step`` (default: the number of this call);
        returns :func:`probe_scalars` of the run, ``{}`` on a process other than the main one.

        Raises:
            ShardedModelError: the weights are sharded over the processes (FSDP, ZeRO-3).
            ValueError: the model's family is not served, or it has no processor.
            ScoreError: no sample of the probe set could be scored."""
        if not Workers.from_env().is_main:
            return {}
        step = self.calls + 1 if step is None else int(step)
        started = time.perf_counter()
        with borrowed(model) as inner:
            adapter = self._adapter(inner, processor)
            run_out = self._member_dir(step)
            config = self.config.replace(  # the run records the model as it is
                model=str(inner.name_or_path or "live model"), out=run_out, device=str(inner.device),
                dtype=str(inner.dtype).removeprefix("torch."))
            result = run_score(config, model=adapter, data=self.source, workers=Workers())
        self.calls += 1
        if self.out is not None:
            self._write_series(config.model)
        log.info("probe at step %d: %d samples in %.2f s", step, result.summary["n_samples"],
                 time.perf_counter() - started)
        return probe_scalars(result.summary)

    def _adapter(self, model: Any, processor: Any) -> Any:
        """``model`` in its family's adapter (no copy, no reload) with the run's options."""
        cfg = self.config
        return adapter_class(model.config.model_type)(
            model, self._processor(model, processor), prompt=cfg.prompt,
            include_special=cfg.include_special, vision_view=cfg.vision_view)

    def _processor(self, model: Any, given: Any) -> Any:
        if given is not None:
            return given
        if self.processor is None:
            from transformers import AutoProcessor

            name = model.name_or_path
            if not name:
                raise ValueError("the model has no name_or_path to load its processor from: pass processor=")
            self.processor = AutoProcessor.from_pretrained(name)
        return self.processor

    def _member_dir(self, step: int) -> str | None:
        if self.out is None:
            return None
        run_dir = member_dir(self.out, f"step-{step}")
        if run_dir.exists():  # the step is probed again: training resumed from a checkpoint
            log.warning("probe: %s is replaced (step %d probed again)", run_dir, step)
            shutil.rmtree(run_dir)
        return str(run_dir)

    def _write_series(self, model: str) -> None:
        """``OUT/sweep.json`` over every finished step run in ``OUT/members``, by step."""
        assert self.out is not None
        steps = sorted(_step_members(self.out, model), key=lambda m: m.step or 0)
        series = SweepConfig.from_options(**{
            **{k: v for k, v in self.config.to_dict().items() if k not in ("model", "data", "out")},
            "model": f"probe of {model}", "models": (model,), "data": self.config.data,
            "out": str(self.out), "reuse_vision": False})
        doc = summarize_sweep(series, steps, {})
        doc["kind"] = "training steps"
        write_series(self.out, "sweep", doc)


def _step_members(root: Path, model: str) -> list[Member]:
    """The finished step runs of a series folder (this training's and an earlier one's)."""
    return [Member(p.name, model, step=step_of(p.name, DEFAULT_STEP_FROM))  # the probe names them step-N
            for p in (root / MEMBERS).iterdir() if is_finished(p)]


def _check_series_folder(root: Path) -> None:
    """``root`` must be new, empty, or a series folder (its ``members/`` and ``sweep.json``)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise RunDirError(f"probe out {root} is a file, not a folder")
    foreign = sorted(p.name for p in root.iterdir() if p.name not in (MEMBERS, "sweep.json", "report.html"))
    if foreign:
        raise RunDirError(f"probe out {root} holds other files ({', '.join(foreign[:3])}): choose a new or "
                          "empty folder, or the folder of an earlier probe series")
