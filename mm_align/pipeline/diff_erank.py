"""``diff_erank``: the paper's single-modal Diff-eRank of a text LLM (section 3-4).

For every text, the last hidden state (after the final norm: the base model's
``last_hidden_state``, ``AutoModel(...)[0]``) of

* M1, the trained checkpoint, and
* M0, the same architecture randomly initialised: ``AutoModel.from_config(config)`` under
  ``torch.manual_seed(seed)``, as the paper's official code does. Its weights therefore
  follow the architecture's ``_init_weights`` in ``transformers`` (for OPT and Llama:
  normal(0, init_std / initializer_range) for linear and embedding weights, zero biases,
  unit norms) and are reproducible for a given seed, torch and transformers version (both
  recorded in the provenance). M0 is built in float32 on the CPU and then cast and moved,
  so the same seed gives the same M0 whatever ``dtype`` and ``device``.

is reduced at once to its matrix entropy H (nats) and eRank = exp(H); per sample Diff-eRank
= eRank(M0) - eRank(M1). Dataset level:

* Algorithm (a), the paper's definition: exp(mean_i H0_i) - exp(mean_i H1_i);
* Algorithm (b), an ablation: mean_i (exp(H0_i) - exp(H1_i)).

Tokenisation follows the official script: the tokenizer's own special tokens (e.g. OPT's
BOS) are kept and the sequence is truncated to ``max_length`` tokens (2048 in the paper).
Batches are right padded under an attention mask and only each text's real tokens are
measured, so the batch size does not change results (beyond float round-off).

Run files are those of :func:`mm_align.pipeline.score` (results.jsonl, errors.jsonl,
summary.json, config.json) with the per-sample fields listed in :func:`diff_erank`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mm_align.adapters.modules import resolve_dtype
from mm_align.data import BadSampleError, Sample
from mm_align.metrics import aggregate_erank, matrix_entropy
from mm_align.metrics.bootstrap import percentile_interval, resample_indices
from mm_align.pipeline.provenance import model_provenance, software_versions
from mm_align.pipeline.reduce import MetricError
from mm_align.pipeline.runfiles import RunFiles
from mm_align.pipeline.score import ScoreError
from mm_align.pipeline.texts import open_texts

__all__ = ["MODELS", "diff_erank", "format_diff_erank", "summarize_diff_erank"]

log = logging.getLogger(__name__)

MODELS = ("trained", "untrained")
"""Result-field suffixes: M1 (the checkpoint) and M0 (its seeded random init)."""

TEXT_PREVIEW = 200
"""Characters of each text kept in results.jsonl (the data fingerprint identifies the rest)."""


class _Models:
    """Tokenizer, trained model M1 and seeded random model M0, ready for inference."""

    def __init__(self, name_or_path: str, config: Any, device: str, dtype: str, seed: int) -> None:
        from transformers import AutoModel, AutoTokenizer

        torch_dtype = resolve_dtype(dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            # Llama-style tokenizers have no pad token; padded positions are masked out and
            # never measured, so which id fills them does not matter.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.trained = AutoModel.from_pretrained(name_or_path, dtype=torch_dtype)
        # M0 is initialised on the CPU: seeding the CPU generator gives the same weights as
        # the official torch.manual_seed(seed), and fork_rng restores the caller's stream.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            # Explicit float32: from_config would otherwise init in the config's dtype
            # (float16 for the OPT checkpoints), and M0 would depend on --dtype.
            self.untrained = AutoModel.from_config(config, dtype=torch.float32)
        for m in (self.trained, self.untrained):
            m.to(device=device, dtype=torch_dtype).eval()
        self.device = self.trained.device


def _entropies(
    model: torch.nn.Module, name: str, inputs: Mapping[str, torch.Tensor], lengths: Sequence[int]
) -> tuple[list[float], int]:
    """Matrix entropy (nats) of each sequence's last hidden state, real tokens only, and the
    states' width d.

    ``inputs``: right-padded ``input_ids`` / ``attention_mask`` of shape (B, L); ``lengths``:
    real tokens per row. The (B, L, d) states are freed before returning.

    Raises:
        MetricError: a sequence's states have no entropy (NaN from a half-precision
            overflow, ...); the message names the model.
    """
    with torch.inference_mode():
        states = model(**inputs)[0]
        try:
            return [matrix_entropy(states[i, :n]) for i, n in enumerate(lengths)], states.shape[-1]
        except ValueError as err:
            raise MetricError(f"{name} model: {err}") from None


class _DiffScorer:
    """Turns batches of samples into result and error records."""

    def __init__(self, models: _Models, max_length: int, strict: bool) -> None:
        self.models, self.max_length, self.strict = models, max_length, strict

    def _fail(self, sample: Sample, stage: str, reason: str) -> dict[str, Any]:
        if self.strict:
            raise ScoreError(
                f"sample {sample.id!r} (index {sample.index}) failed at {stage}: {reason}"
            )
        return {"id": sample.id, "index": sample.index, "stage": stage, "reason": reason}

    def _measure(self, samples: list[Sample], texts: list[str]) -> list[dict[str, Any]]:
        """Records of samples whose texts have >= 2 real tokens (checked by the caller)."""
        enc = self.models.tokenizer(
            texts, truncation=True, max_length=self.max_length, padding=True
        )
        lengths = [sum(mask) for mask in enc["attention_mask"]]
        inputs = {
            k: torch.tensor(enc[k], device=self.models.device)
            for k in ("input_ids", "attention_mask")
        }
        # One model's states at a time: each is reduced to scalars before the next runs.
        h, widths = {}, {}
        for name in MODELS:
            h[name], widths[name] = _entropies(getattr(self.models, name), name, inputs, lengths)
        out = []
        for i, (sample, n) in enumerate(zip(samples, lengths)):
            record: dict[str, Any] = {
                "id": sample.id,
                "index": sample.index,
                "text": sample.text[:TEXT_PREVIEW],
                "tokens": n,
            }
            for name in MODELS:
                record[f"entropy_{name}"] = h[name][i]
                record[f"erank_{name}"] = math.exp(h[name][i])
                record[f"matrix_entropy_{name}"] = h[name][i] / math.log(widths[name])
            record["diff_erank"] = record["erank_untrained"] - record["erank_trained"]
            out.append(record)
        return out

    def _run(self, samples: list[Sample], texts: list[str]) -> tuple[list[dict], list[dict]]:
        try:
            return self._measure(samples, texts), []
        except (ValueError, RuntimeError) as err:
            if len(samples) > 1:
                # One bad text must not cost its batch-mates: isolate it.
                parts = [self._run([s], [t]) for s, t in zip(samples, texts)]
                return [r for p, _ in parts for r in p], [e for _, p in parts for e in p]
            if isinstance(err, MetricError):
                return [], [self._fail(samples[0], "metric", str(err))]
            return [], [self._fail(samples[0], "model", f"{type(err).__name__}: {err}")]

    def batch(self, samples: Sequence[Sample]) -> tuple[list[dict], list[dict]]:
        """Score one batch: (result records, error records), together covering every sample."""
        errors, kept, texts, truncated = [], [], [], {}
        for sample in samples:
            try:
                text = sample.check_text()
            except BadSampleError as err:
                errors.append(self._fail(sample, "load", err.reason))
                continue
            # One token past the limit tells whether truncation will cut the text, without
            # tokenising all of a very long one.
            enc = self.models.tokenizer(
                text,
                truncation=True,
                max_length=self.max_length + 1,
                return_special_tokens_mask=True,
            )
            content = len(enc["input_ids"]) - sum(enc["special_tokens_mask"])
            if content < 2:
                # With a BOS token such a text still gives 2 rows, whose centred vectors are
                # opposite: eRank 1 for every model, a Diff-eRank of 0 by construction.
                errors.append(
                    self._fail(
                        sample,
                        "metric",
                        f"text has {content} token(s) besides special tokens; eRank needs at least 2",
                    )
                )
                continue
            kept.append(sample)
            texts.append(text)
            truncated[sample.id] = len(enc["input_ids"]) > self.max_length
        results, model_errors = self._run(kept, texts) if kept else ([], [])
        for record in results:
            record["truncated"] = truncated[record["id"]]
        return results, errors + model_errors


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


def _batched(items: Sequence[Sample], size: int) -> Iterable[Sequence[Sample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def diff_erank(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    max_length: int = 2048,
    batch_size: int = 8,
    limit: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
    strict: bool = False,
    progress: bool = True,
    text_column: str | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Diff-eRank of a text LLM over a text data set; writes a run directory.

    Args:
        model: checkpoint folder or hub id of the trained model M1 (``AutoModel`` /
            ``AutoTokenizer``); M0 is built from its config (see the module doc).
        data: texts: ``.txt`` (one per line), ``.jsonl`` / ``.csv`` with a ``text`` column
            (or instruction + response), a ``save_to_disk`` folder or a hub data set name.
        out: the run directory.
        max_length: texts are truncated to this many tokens, special tokens included.
        batch_size: texts per forward pass; results do not depend on it.
        limit: score only the first ``limit`` texts.
        resume: continue the run in ``out``: texts already recorded are skipped.
        device, dtype: where and in which precision both models run (metrics: float64).
        seed: seed of M0's random init and of the bootstrap.
        strict: stop at the first bad text instead of recording it.
        progress: show a progress bar.
        text_column: the text column of JSONL / CSV / datasets data (default ``text``).
        n_boot: bootstrap replicates of the 95% intervals.

    Writes ``results.jsonl`` (per text: ``id``, ``index``, ``text`` (first 200 characters),
    ``tokens`` (rows measured), ``truncated``, ``entropy_{trained,untrained}`` (nats),
    ``erank_{trained,untrained}``, ``matrix_entropy_{trained,untrained}`` (H / log d),
    ``diff_erank``), ``errors.jsonl``, ``config.json`` and ``summary.json`` (see
    :func:`summarize_diff_erank`).

    Returns:
        the summary (also in ``out/summary.json``).

    Raises:
        ScoreError: no text could be scored, or ``strict`` and a text failed.
        ManifestError: the data set is malformed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 tokens, got {max_length}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    from transformers import AutoConfig

    source = open_texts(data, text_column=text_column)
    samples = list(source)[:limit] if limit is not None else list(source)
    config = AutoConfig.from_pretrained(str(model))
    identity = {
        "model": model_provenance(str(model), config),
        "data": {
            "path": str(Path(data).resolve()) if Path(data).exists() else str(data),
            "description": source.describe(),
            "fingerprint": source.fingerprint(),
        },
        "text_column": text_column,
        "max_length": max_length,
        "dtype": str(resolve_dtype(dtype)).removeprefix("torch."),
        "seed": seed,
        "untrained": "AutoModel.from_config(config) under torch.manual_seed(seed)",
    }
    # The run directory is checked before the weights are loaded: a refused resume is cheap.
    files = RunFiles.start(out, identity, resume=resume)
    models = _Models(str(model), config, device, dtype, seed)
    done = files.done_ids()
    pending = [s for s in samples if s.id not in done]
    if done:
        log.info("diff-erank: resuming, %d of %d texts already done", len(done), len(samples))
    scorer = _DiffScorer(models, max_length, strict)
    with tqdm(total=len(pending), desc="diff-erank", unit="text", disable=not progress) as bar:
        for chunk in _batched(pending, batch_size):
            files.append(*scorer.batch(chunk))
            bar.update(len(chunk))
    provenance = {
        **identity,
        "device": str(models.device),
        "n_requested": len(samples),
        "versions": software_versions(),
    }
    summary = summarize_diff_erank(
        files.results(), len(files.errors()), provenance, n_boot=n_boot, seed=seed
    )
    files.write_summary(summary)
    if summary["n_samples"] == 0:
        raise ScoreError(
            f"none of the {len(samples)} texts could be scored; see {Path(out) / 'errors.jsonl'}"
        )
    return summary
