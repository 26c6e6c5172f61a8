"""``diff_erank``: the paper's single-modal Diff-eRank of a text LLM (section 3-4).

For every text, the last hidden state (after the final norm: the base model's
``last_hidden_state``, ``AutoModel(...)[0]``) of

* M1, the trained checkpoint, and
* M0, the same architecture randomly initialised: ``AutoModel.from_config(config)`` under
  ``torch.manual_seed(seed)``, as the paper's official code does
  (:meth:`mm_align.adapters.text.TextAdapter.untrained`). Its weights follow the
  architecture's ``_init_weights`` in ``transformers`` and are reproducible for a given seed,
  torch and transformers version (both recorded in the provenance), whatever ``dtype`` and
  ``device``.

is reduced at once to its matrix entropy H (nats) and eRank = exp(H); per sample Diff-eRank
= eRank(M0) - eRank(M1). Dataset level:

* Algorithm (a), the paper's definition: exp(mean_i H0_i) - exp(mean_i H1_i);
* Algorithm (b), an ablation: mean_i (exp(H0_i) - exp(H1_i)).

Tokenisation follows the official script: the tokenizer's own special tokens (e.g. OPT's
BOS) are kept and the sequence is truncated to ``max_length`` tokens (2048 in the paper).
Batches are right padded under an attention mask and only each text's real tokens are
measured, so the batch size does not change results (beyond float round-off).

Texts go through the same batch scorer as VLM samples (:mod:`mm_align.pipeline.scorer`) and
land in the same run directory layout (:mod:`mm_align.rundir`), with the per-sample fields
listed in :func:`run_diff_erank`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mm_align.adapters.text import TextAdapter
from mm_align.config import DiffErankConfig
from mm_align.data import Sample
from mm_align.metrics import aggregate_erank, matrix_entropy
from mm_align.metrics.bootstrap import percentile_interval, resample_indices
from mm_align.pipeline.loading import load_kwargs
from mm_align.pipeline.reduce import MetricError
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.text_run import open_text_data, run_text_task

__all__ = ["MODELS", "format_diff_erank", "run_diff_erank", "summarize_diff_erank"]

log = logging.getLogger(__name__)

MODELS = ("trained", "untrained")
"""Result-field suffixes: M1 (the checkpoint) and M0 (its seeded random init)."""

TEXT_PREVIEW = 200
"""Characters of each text kept in results.jsonl (the data fingerprint identifies the rest)."""


@dataclass
class TextTask:
    """Score texts with a trained text LLM and its untrained twin (the
    :class:`~mm_align.pipeline.scorer.Task` of ``diff-erank``)."""

    models: Mapping[str, TextAdapter]

    def prepare(self, sample: Sample) -> tuple[str, bool]:
        text = sample.check_text()
        content, truncated = self.models["trained"].count_tokens(text)
        if content < 2:
            # With a BOS token such a text still gives 2 rows, whose centred vectors are
            # opposite: eRank 1 for every model, a Diff-eRank of 0 by construction.
            raise MetricError(f"text has {content} token(s) besides special tokens; eRank needs at least 2")
        return text, truncated

    def represent(self, prepared: list[tuple[str, bool]]) -> list[dict[str, Any]]:
        texts = [text for text, _ in prepared]
        states = {name: model.represent_batch(texts) for name, model in self.models.items()}
        return [{name: states[name][i] for name in MODELS} for i in range(len(texts))]

    def reduce(self, sample: Sample, prepared: tuple[str, bool], rep: Mapping[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {"text": sample.text[:TEXT_PREVIEW], "tokens": int(rep["trained"].shape[0]),
                                  "truncated": prepared[1]}
        for name in MODELS:
            try:
                h = matrix_entropy(rep[name])
            except ValueError as err:  # NaN from a half-precision overflow, ...
                raise MetricError(f"{name} model: {err}") from None
            record[f"entropy_{name}"] = h
            record[f"erank_{name}"] = math.exp(h)
            record[f"matrix_entropy_{name}"] = h / math.log(rep[name].shape[-1])
        record["diff_erank"] = record["erank_untrained"] - record["erank_trained"]
        return record


def _bootstrap_diff(
    h0: np.ndarray, h1: np.ndarray, n_boot: int, seed: int, level: float = 0.95
) -> dict[str, list[float]]:
    """Paired percentile bootstrap over samples of Diff-eRank (a) and (b).

    Each replicate draws n sample indices with replacement and uses them for both models,
    so the interval keeps the per-sample pairing of M0 and M1.
    """
    idx = resample_indices(np.random.default_rng(seed), n_boot, h0.size)
    reps = {
        "diff_erank": np.exp(h0[idx].mean(1)) - np.exp(h1[idx].mean(1)),
        "diff_erank_mean": (np.exp(h0)[idx] - np.exp(h1)[idx]).mean(1),
    }
    return {k: list(percentile_interval(r, level)) for k, r in reps.items()}


def summarize_diff_erank(
    results: Sequence[Mapping[str, Any]],
    n_errors: int,
    provenance: Mapping[str, Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """summary.json of a Diff-eRank run, from its per-sample records (dataset order) only.

    Returns:
        ``n_samples``, ``n_errors``, ``provenance`` and, when anything was scored,
        ``diff_erank`` = {"paper": Algorithm (a), "mean": Algorithm (b)},
        ``erank`` / ``erank_mean`` = {"trained", "untrained"} by Algorithm (a) / (b),
        ``matrix_entropy`` = {model: mean of H / log d} (the v1 paper's normalised entropy),
        ``ci95`` = {"diff_erank": [lo, hi], "diff_erank_mean": [lo, hi]} (paired
        bootstrap, ``n_boot`` replicates) and ``tokens_mean``.
    """
    summary: dict[str, Any] = {
        "n_samples": len(results),
        "n_errors": n_errors,
        "provenance": dict(provenance),
    }
    if not results:
        return summary
    h = {m: [r[f"entropy_{m}"] for r in results] for m in MODELS}
    erank = {m: aggregate_erank(h[m], method="paper") for m in MODELS}
    erank_mean = {m: aggregate_erank(h[m], method="mean") for m in MODELS}
    summary.update(
        diff_erank={
            "paper": erank["untrained"] - erank["trained"],
            "mean": erank_mean["untrained"] - erank_mean["trained"],
        },
        erank=erank,
        erank_mean=erank_mean,
        matrix_entropy={
            m: math.fsum(r[f"matrix_entropy_{m}"] for r in results) / len(results) for m in MODELS
        },
        ci95=_bootstrap_diff(np.asarray(h["untrained"]), np.asarray(h["trained"]), n_boot, seed),
        tokens_mean=sum(r["tokens"] for r in results) / len(results),
    )
    return summary


def format_diff_erank(summary: Mapping[str, Any]) -> str:
    """A short human-readable table of a Diff-eRank summary, for the terminal."""
    lines = [f"samples scored: {summary['n_samples']}   errors: {summary['n_errors']}"]
    if "diff_erank" not in summary:
        return "\n".join(lines)
    ci = summary["ci95"]
    rows = [
        ("Diff-eRank (a) exp(mean H)", summary["diff_erank"]["paper"], ci["diff_erank"]),
        ("Diff-eRank (b) mean of eRanks", summary["diff_erank"]["mean"], ci["diff_erank_mean"]),
    ]
    for m, label in (("untrained", "M0 untrained"), ("trained", "M1 trained")):
        rows.append((f"eRank {label} (a)", summary["erank"][m], None))
    for m, label in (("untrained", "M0 untrained"), ("trained", "M1 trained")):
        rows.append((f"matrix entropy H/log d {label}", summary["matrix_entropy"][m], None))
    lines.append(f"  {'metric':<34} {'value':>10}   95% CI")
    for label, value, interval in rows:
        bounds = f"   [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
        lines.append(f"  {label:<34} {value:>10.4f}{bounds}")
    return "\n".join(lines)


def run_diff_erank(config: DiffErankConfig, model: TextAdapter | None = None) -> ScoreResult:
    """Diff-eRank of a text LLM over a text data set (see :class:`DiffErankConfig`).

    ``config.data``: ``.txt`` (one text per line), ``.jsonl`` / ``.csv`` with a ``text``
    column (or instruction + response), a ``save_to_disk`` folder or a hub data set name.
    ``model``: a :class:`TextAdapter` already loaded, or None to load ``config.model``.

    Writes (or, with ``config.out=None``, keeps) ``results.jsonl`` (per text: ``id``,
    ``index``, ``text`` (first 200 characters), ``tokens`` (rows measured), ``truncated``,
    ``entropy_{trained,untrained}`` (nats), ``erank_{trained,untrained}``,
    ``matrix_entropy_{trained,untrained}`` (H / log d), ``diff_erank``), ``errors.jsonl``,
    ``config.json`` and ``summary.json`` (see :func:`summarize_diff_erank`).

    Raises:
        ScoreError: no text could be scored, or ``strict`` and a text failed.
        ManifestError: the data set is malformed.
    """
    def load() -> TextAdapter:
        return model or TextAdapter.from_pretrained(config.model, max_length=config.max_length,
                                                    **load_kwargs(config))

    def summarize(results: list[dict[str, Any]], n_errors: int, provenance: dict[str, Any]) -> dict[str, Any]:
        return summarize_diff_erank(results, n_errors, provenance, n_boot=config.n_boot, seed=config.seed)

    return run_text_task(
        config, open_text_data(config), load=load, summarize=summarize,
        task=lambda trained: TextTask({"trained": trained, "untrained": trained.untrained(config.seed)}),
        settings={"untrained": "AutoModel.from_config(config) under torch.manual_seed(seed)"},
    )
