"""The one batch scorer of every pipeline: samples in, result and error records out.

A :class:`Task` says how a sample is prepared (image and text loaded, transformed, checked),
how a batch of prepared samples becomes representations (one adapter call), and how one
representation becomes a result record. :class:`Scorer` runs a batch through a task and
makes sure every sample ends as exactly one record: a bad sample is recorded with the stage
that failed (``load``, ``model`` or ``metric``) and its reason, and a batch that fails in
the model is retried sample by sample so one bad input never costs its batch-mates.
:func:`score_into` reduces batch k to numbers in a worker thread while the model runs batch
k+1, so the metrics stay off the forward pass's critical path.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from mm_align.data import BadSampleError, Sample
from mm_align.pipeline.reduce import MetricError

__all__ = ["MetricError", "Pending", "Reduced", "ScoreError", "Scorer", "Task", "score_into"]

log = logging.getLogger(__name__)

# Adapters name a failing input by its place in their batch ("sample 0: ..."); a record
# already carries the sample's own id and index, and a place in a batch of one misleads.
_BATCH_PLACE = re.compile(r"^sample \d+: ")


class ScoreError(RuntimeError):
    """A run could not produce any result (every sample failed, or --strict hit a bad one)."""


@dataclass
class Reduced:
    """What a task keeps of one sample when a record is not enough: the record's JSON
    ``fields`` and ``states``, named tensors the store keeps beside the record (the inputs of
    dataset-level metrics that need more than per-sample scalars)."""

    fields: dict[str, Any]
    states: dict[str, torch.Tensor]


class Task(Protocol):
    """What a pipeline does with a sample; see the module doc."""

    def prepare(self, sample: Sample) -> Any:
        """The model's input for ``sample``; raises BadSampleError or MetricError."""

    def represent(self, prepared: list[Any]) -> list[Any]:
        """One representation per prepared sample; raises ValueError / RuntimeError."""

    def reduce(self, sample: Sample, prepared: Any, rep: Any) -> dict[str, Any] | Reduced:
        """The result record's fields (and tensors to keep, :class:`Reduced`); raises
        MetricError."""


class Scorer:
    """Runs batches through a :class:`Task`; ``strict`` turns the first failure into
    :class:`ScoreError`; ``num_workers`` threads prepare a batch's samples (image decoding
    releases the GIL), in order."""

    def __init__(self, task: Task, strict: bool = False, num_workers: int = 0) -> None:
        self.task, self.strict = task, strict
        self._pool = ThreadPoolExecutor(num_workers, thread_name_prefix="mm-align-load") if num_workers else None

    def close(self) -> None:
        """Stop the loading threads (when the scorer has them)."""
        if self._pool:
            self._pool.shutdown()

    def _prepared(self, sample: Sample) -> tuple[Sample, Any, BaseException | None]:
        try:
            return sample, self.task.prepare(sample), None
        except (BadSampleError, MetricError) as err:
            return sample, None, err

    def _fail(self, sample: Sample, stage: str, reason: str) -> dict[str, Any]:
        if self.strict:
            where = f", {sample.origin}" if sample.origin else ""
            raise ScoreError(f"sample {sample.id!r} (index {sample.index}{where}) failed at {stage}: {reason}")
        # A stream's sample names its shard and key (or file and row) as its source.
        source = {"source": sample.origin} if sample.origin else {}
        return {"id": sample.id, "index": sample.index, "stage": stage, "reason": reason, **source}

    def _reduce(self, sample: Sample, prepared: Any, rep: Any) -> tuple[dict | None, dict | None, dict | None]:
        """``(result, error, states)`` of one sample: a result or an error, and the states
        a :class:`Reduced` result keeps (None when it keeps none)."""
        try:
            reduced = self.task.reduce(sample, prepared, rep)
        except MetricError as err:
            return None, self._fail(sample, "metric", str(err)), None
        fields, states = (reduced.fields, reduced.states) if isinstance(reduced, Reduced) else (reduced, None)
        return {"id": sample.id, "index": sample.index, **fields}, None, states

    def _represent(self, batch: list[tuple[Sample, Any]]) -> tuple[list[tuple[Sample, Any, Any]], list[dict]]:
        """``(sample, prepared, representation)`` of the samples the model took, and the
        error records of those it did not."""
        try:
            reps = self.task.represent([prepared for _, prepared in batch])
        except (ValueError, RuntimeError) as err:  # AdapterInputError is a ValueError
            if len(batch) > 1:  # isolate the bad sample: each is retried alone
                parts = [self._represent([item]) for item in batch]
                return [r for done, _ in parts for r in done], [e for _, errors in parts for e in errors]
            reason = _BATCH_PLACE.sub("", str(err))
            return [], [self._fail(batch[0][0], "model", f"{type(err).__name__}: {reason}")]
        return [(sample, prepared, rep) for (sample, prepared), rep in zip(batch, reps)], []

    def forward(self, samples: Sequence[Sample]) -> Pending:
        """The model's part of a batch: samples prepared and represented."""
        ready, errors = [], []
        prepared = self._pool.map(self._prepared, samples) if self._pool else map(self._prepared, samples)
        for sample, item, err in prepared:
            if isinstance(err, BadSampleError):
                errors.append(self._fail(sample, "load", err.reason))
            elif err is not None:
                errors.append(self._fail(sample, "metric", str(err)))
            else:
                ready.append((sample, item))
        represented, failed = self._represent(ready) if ready else ([], [])
        return Pending(represented, errors + failed, len(samples))

    def finish(self, pending: Pending) -> tuple[list[dict], list[dict], dict[int, dict]]:
        """The metrics' part of a batch: ``(results, errors, states)``, one record per
        sample, and sample index -> the tensors kept for it (see :class:`Reduced`)."""
        results, errors, states = [], list(pending.errors), {}
        with torch.inference_mode():
            for sample, prepared, rep in pending.represented:
                result, error, kept = self._reduce(sample, prepared, rep)
                if result is not None:
                    results.append(result)
                    if kept:
                        states[sample.index] = kept
                elif error is not None:
                    errors.append(error)
        return results, errors, states

    def batch(self, samples: Sequence[Sample]) -> tuple[list[dict], list[dict]]:
        """Score one batch: ``(results, errors)``, together one record per sample."""
        results, errors, _ = self.finish(self.forward(samples))
        return results, errors


@dataclass
class Pending:
    """A batch between the model and the metrics: what was represented, what failed."""

    represented: list[tuple[Sample, Any, Any]]
    errors: list[dict[str, Any]]
    n_samples: int


def _drain(inflight: Future | None, store: Any, bar: Any) -> None:
    """Append the records of a batch whose metrics were running in the worker thread."""
    if inflight is not None:
        pending_results, pending_errors, states = inflight.result()
        # Only a task that keeps states passes them: other stores need not take them.
        store.append(pending_results, pending_errors, *([states] if states else []))
        bar.update(len(pending_results) + len(pending_errors))


def score_into(
    scorer: Scorer,
    samples: Callable[[], Iterable[Sample]],
    store: Any,
    *,
    owns: Callable[[int], bool],
    n_samples: int,
    batch_size: int,
    progress: bool,
    desc: str,
) -> None:
    """Score the samples not yet in ``store``, appending one batch at a time.

    ``samples`` is called to stream this worker's share afresh (only one batch of samples is
    held at once); ``owns(index)`` tells whether a sample index is in that share, and
    ``n_samples`` is its size, for the progress bar.
    """
    done = store.done_ids()
    todo = (s for s in samples() if s.id not in done)
    n_done = sum(1 for index in done.values() if owns(index))
    if n_done:
        log.info("%s: resuming, %d of %d samples already done", desc, n_done, n_samples)
    # The metrics of batch k run in a worker thread while the model runs batch k+1 (torch
    # releases the GIL): on a GPU the spectra come for free, and records keep their order.
    with tqdm(total=n_samples - n_done, desc=desc, unit="sample", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mm-align-metrics") as metrics:
        inflight: Future | None = None
        try:
            while chunk := list(itertools.islice(todo, batch_size)):
                pending = scorer.forward(chunk)
                previous, inflight = inflight, None
                _drain(previous, store, bar)
                inflight = metrics.submit(scorer.finish, pending)
        finally:  # a failure in batch k+1 still keeps batch k's records
            previous, inflight = inflight, None
            scorer.close()
            _drain(previous, store, bar)
