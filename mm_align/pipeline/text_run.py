"""One text model over a text data set into one run directory: the orchestration shared by
``diff-erank`` and the companion paper's commands (``scaling`` members, ``info-gain``,
``attribution``).

The data set is opened, selected (``--limit`` / ``--sample``) and fingerprinted, the run
directory owned (its OS lock) and checked against the settings and the model's identity
before any weights load (``--resume`` continues a partial run and
returns a finished one as it is), the texts go through the batch scorer
(:mod:`mm_align.pipeline.scorer`) and the summary is computed from the results alone.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mm_align.config import DiffErankConfig
from mm_align.pipeline.loading import config_kwargs, hf_kwargs
from mm_align.pipeline.provenance import model_identity, model_provenance, software_versions
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.scorer import ScoreError, Scorer, Task, score_into
from mm_align.pipeline.selection import Selection, select
from mm_align.pipeline.texts import open_texts
from mm_align.rundir import MemoryRun, RunFiles, is_finished, owned

__all__ = ["TextData", "open_text_data", "run_text_task"]

TextData = tuple[Selection, dict[str, Any]]
"""The texts to score (after ``limit`` / ``sample``) and the data set's provenance
(``path``, ``description``, ``fingerprint``)."""


def open_text_data(config: DiffErankConfig) -> TextData:
    """The texts of ``config.data`` (see :func:`~mm_align.pipeline.texts.open_texts`).

    Raises:
        ValueError: no text to score (refused before any weights load).
    """
    source = open_texts(config.data, text_column=config.text_column)
    chosen = select(source, config.limit, config.sample, config.sample_seed)
    if not chosen:
        raise ValueError(f"the data set {config.data} has no texts: nothing to score")
    path = Path(config.data)
    data = {"path": str(path.resolve()) if path.exists() else config.data,
            "description": source.describe(), "fingerprint": source.fingerprint()}
    return chosen, data


def run_text_task(
    config: DiffErankConfig,
    data: TextData,
    *,
    load: Callable[[], Any],
    task: Callable[[Any], Task],
    summarize: Callable[[list[dict[str, Any]], int, dict[str, Any]], dict[str, Any]],
    settings: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> ScoreResult:
    """Score ``data`` with the model ``load()`` gives (a :class:`TextAdapter` or an object
    with its ``model``, ``config``, ``dtype`` and ``device``) through ``task(model)``.

    ``summarize(results, n_errors, provenance)`` makes ``summary.json``; ``settings`` join
    the provenance (the conventions of the analysis). ``command`` (default
    ``config.command``) names the run in ``config.json``.

    Raises:
        ScoreError: no text could be scored, or ``strict`` and a text failed.
        RunDirError: ``config.out`` holds another run, or one with other settings.
    """
    samples, info = data
    command = command or config.command
    store = MemoryRun() if config.out is None else RunFiles(config.out)
    # one process owns the run directory until the run is written
    with nullcontext() if config.out is None else owned(config.out, config.overwrite):
        identity = {**config.identity(),
                    "model": model_identity(config.model, **config_kwargs(hf_kwargs(config))),
                    "data": info["fingerprint"]}
        store.check(command, identity, config.resume, config.overwrite)  # before the weights load
        out = store.root if isinstance(store, RunFiles) else None
        if isinstance(store, RunFiles) and config.resume and is_finished(store.root) \
                and {s.id for s in samples} <= set(store.done_ids()):  # nothing left: no model load
            return ScoreResult(store.read_summary(), store.results(), store.errors(), out=out)
        model = load()
        store.open({"command": command, "config": config.to_dict(), "identity": identity})
        score_into(Scorer(task(model), config.strict), lambda: iter(samples), store,
                   owns=lambda _: True, n_samples=len(samples), batch_size=config.batch_size,
                   progress=config.progress, desc=command)
        provenance = {"model": model_provenance(config.model, model.config), "data": info,
                      **(settings or {}), "max_length": config.max_length,
                      "dtype": str(model.dtype).removeprefix("torch."), "device": str(model.device),
                      "seed": config.seed, "n_requested": len(samples),
                      "selection": samples.description, "versions": software_versions()}
        del model
        gc.collect()  # a series loads one model after another
        results, errors = store.results(), store.errors()
        summary = store.write_summary(summarize(results, len(errors), provenance))
    if not results:
        where = f"; see the errors in {out}" if out else ""
        raise ScoreError(f"none of the {len(samples)} texts could be scored{where}")
    return ScoreResult(summary, results, errors, out=out)
