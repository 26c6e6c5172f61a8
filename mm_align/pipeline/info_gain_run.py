"""``info_gain``: the information gain of each token along a text (GEOMETRY.md Q4).

Per text, the hidden states Z (T x d) at ``layer`` (``output_hidden_states`` convention,
read by a hook) give :func:`~mm_align.metrics.info_gain.gain_curve`: entry t is the
log-det entropy gained by appending token t to tokens < t, ``1/2 ln(lam + rho_t)`` with
rho_t the optimal ridge objective of regressing token t on the earlier ones. The curve sums
to the log-det entropy of the whole text. Every token the model sees is measured, the
tokenizer's BOS included (it is entry 0). Conventions: docs/CHOICES.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mm_align.adapters.text import TextAdapter
from mm_align.config import InfoGainConfig
from mm_align.data import Sample
from mm_align.metrics.info_gain import gain_curve
from mm_align.pipeline.diff_erank import TEXT_PREVIEW
from mm_align.pipeline.loading import load_kwargs
from mm_align.pipeline.reduce import MetricError
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.text_run import open_text_data, run_text_task

__all__ = ["GainTask", "mean_curve", "run_info_gain", "summarize_info_gain"]


@dataclass
class GainTask:
    """Token states at one layer -> the gain curve (a :class:`~mm_align.pipeline.scorer.Task`)."""

    model: TextAdapter
    config: InfoGainConfig

    def __post_init__(self) -> None:
        self.model.layer_index(self.config.layer)  # a bad layer fails before any text

    def prepare(self, sample: Sample) -> tuple[str, bool]:
        text = sample.check_text()
        return text, self.model.count_tokens(text)[1]

    def represent(self, prepared: list[tuple[str, bool]]) -> list[Any]:
        return self.model.layer_states([text for text, _ in prepared], self.config.layer)

    def reduce(self, sample: Sample, prepared: tuple[str, bool], rep: Any) -> dict[str, Any]:
        c = self.config
        try:
            curve = gain_curve(rep, lam=c.lam, form=c.form, half=c.half,
                               normalize_rows=c.normalize_rows)
        except (ValueError, RuntimeError) as err:  # zero rows, NaN, failed Cholesky
            raise MetricError(str(err)) from None
        return {"text": sample.text[:TEXT_PREVIEW], "tokens": len(curve),
                "truncated": prepared[1], "gain_curve": curve, "entropy": float(np.sum(curve)),
                "gain_mean": float(np.mean(curve))}


def mean_curve(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[int]]:
    """Mean gain by token position over the texts that reach it, and how many do."""
    length = max(len(c) for c in curves)
    sums, counts = np.zeros(length), np.zeros(length, dtype=np.int64)
    for c in curves:
        sums[: len(c)] += c
        counts[: len(c)] += 1
    return (sums / counts).tolist(), counts.tolist()


def summarize_info_gain(results: list[dict[str, Any]], n_errors: int,
                        provenance: dict[str, Any]) -> dict[str, Any]:
    """summary.json: ``analysis`` = "info_gain", ``n_samples``, ``n_errors``,
    ``provenance``, ``mean_curve`` / ``position_counts`` (by token position),
    ``entropy_mean`` (mean log-det entropy of a text, nats) and ``gain_mean`` (mean over
    texts of the mean gain per token)."""
    summary: dict[str, Any] = {"analysis": "info_gain", "n_samples": len(results),
                               "n_errors": n_errors, "provenance": provenance}
    if results:
        curve, counts = mean_curve([r["gain_curve"] for r in results])
        summary.update(mean_curve=curve, position_counts=counts,
                       entropy_mean=float(np.mean([r["entropy"] for r in results])),
                       gain_mean=float(np.mean([r["gain_mean"] for r in results])))
    return summary


def run_info_gain(config: InfoGainConfig, model: TextAdapter | None = None) -> ScoreResult:
    """Per-token gain curves of ``config.data`` (see the module doc).

    Writes (or keeps in memory) ``results.jsonl`` (per text: ``id``, ``index``, ``text``,
    ``tokens``, ``truncated``, ``gain_curve`` (T floats, nats), ``entropy`` (their sum),
    ``gain_mean``), ``errors.jsonl``, ``config.json`` and ``summary.json``
    (:func:`summarize_info_gain`).
    """
    def load() -> TextAdapter:
        return model or TextAdapter.from_pretrained(config.model, max_length=config.max_length,
                                                    **load_kwargs(config))

    def task(adapter: TextAdapter) -> GainTask:
        return GainTask(adapter, config)

    def settings() -> dict[str, Any]:
        return {"layer": config.layer, "lam": config.lam, "form": config.form,
                "half": config.half, "normalize_rows": config.normalize_rows,
                "centred": False}

    return run_text_task(config, open_text_data(config), load=load, task=task,
                         summarize=summarize_info_gain, settings=settings())
