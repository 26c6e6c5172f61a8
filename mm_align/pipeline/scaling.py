"""``scaling``: representation entropy of a series of text LLMs against model size
(the companion paper's power law, GEOMETRY.md Q2; conventions in docs/CHOICES.md).

Each model of the series is scored on the same texts into its own run directory,
``OUT/members/NAME`` (:func:`run_member`): per text the matrix entropy H (nats) of the last
hidden state, as ``diff-erank`` measures its trained model (same adapter, tokenisation,
truncation, batch scorer and run-directory layout). A finished member is reused by
``--resume``, a partial one continued, so a series grows model by model. The series'
``OUT/scaling.json`` (:func:`fit_series`) holds every model's parameter count
(:mod:`~mm_align.pipeline.param_count`) and statistics, and for each statistic the fit
``E = a P^b`` (+ c) over the texts every model scored, its paired bootstrap intervals
(:func:`~mm_align.metrics.scaling.bootstrap_power_law`) and a 95 % band of the fitted curve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from mm_align.adapters.text import TextAdapter
from mm_align.config import DiffErankConfig, ScalingConfig
from mm_align.data import Sample
from mm_align.metrics import matrix_entropy
from mm_align.metrics.bootstrap import resample_indices
from mm_align.metrics.scaling import Statistic, bootstrap_power_law, fit_power_law, model_statistic
from mm_align.pipeline.diff_erank import TEXT_PREVIEW, TextTask
from mm_align.pipeline.loading import load_kwargs
from mm_align.pipeline.param_count import count_parameters
from mm_align.pipeline.provenance import software_versions
from mm_align.pipeline.reduce import MetricError
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.scorer import ScoreError
from mm_align.pipeline.text_run import TextData, open_text_data, run_text_task
from mm_align.rundir import check, claim, member_dir, owned, write_series

__all__ = ["SERIES_STATISTICS", "fit_series", "member_name", "run_member", "run_scaling"]

SERIES_STATISTICS: dict[str, tuple[str, Statistic]] = {
    "entropy": ("entropy", "entropy"),
    "normalized_entropy": ("matrix_entropy", "entropy"),
    "erank": ("entropy", "erank"),
}
"""Fitted statistic -> (per-text field of a member's results, :func:`model_statistic` kind):
mean H (nats), mean H / ln d (the sibling paper's normalised matrix entropy) and
exp(mean H) (the dataset eRank of Diff-eRank's Algorithm (a))."""

BAND_POINTS = 40


class MemberTask(TextTask):
    """One model's last-hidden-state entropy per text (``diff-erank``'s trained model alone)."""

    def __init__(self, model: TextAdapter) -> None:
        super().__init__({"trained": model})

    def represent(self, prepared: list[tuple[str, bool]]) -> list[Any]:
        return self.models["trained"].represent_batch([text for text, _ in prepared])

    def reduce(self, sample: Sample, prepared: tuple[str, bool], rep: Any) -> dict[str, Any]:
        try:
            h = matrix_entropy(rep)
        except ValueError as err:  # NaN from a half-precision overflow, ...
            raise MetricError(str(err)) from None
        return {"text": sample.text[:TEXT_PREVIEW], "tokens": int(rep.shape[0]),
                "truncated": prepared[1], "entropy": h, "erank": math.exp(h),
                "matrix_entropy": h / math.log(rep.shape[-1]), "dim": int(rep.shape[-1])}


def member_name(model: str) -> str:
    """The member's folder name: the checkpoint folder's or hub id's last part, with
    characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", Path(str(model).rstrip("/")).name) or "model"


def _member_summary(results: list[dict[str, Any]], n_errors: int,
                    provenance: dict[str, Any]) -> dict[str, Any]:
    """summary.json of a member: mean H, exp(mean H), mean exp(H), mean H / ln d."""
    summary: dict[str, Any] = {"n_samples": len(results), "n_errors": n_errors,
                               "provenance": provenance}
    if results:
        h = np.array([r["entropy"] for r in results], dtype=np.float64)
        summary.update(entropy=float(h.mean()), erank=float(np.exp(h.mean())),
                       erank_mean=float(np.exp(h).mean()), hidden_size=results[0]["dim"],
                       matrix_entropy=float(np.mean([r["matrix_entropy"] for r in results])),
                       tokens_mean=float(np.mean([r["tokens"] for r in results])))
    return summary


def run_member(config: DiffErankConfig, data: TextData) -> ScoreResult:
    """Score one model of a series into ``config.out`` (or memory); a finished member is
    read back under ``resume`` (its identity checked), never rescored."""
    def load() -> TextAdapter:
        return TextAdapter.from_pretrained(config.model, max_length=config.max_length,
                                           **load_kwargs(config))

    return run_text_task(config, data, load=load, task=MemberTask, summarize=_member_summary,
                         settings=count_parameters(config.model), command="scaling-member")


def _band(sizes: np.ndarray, rows: np.ndarray, kind: Statistic, offset: bool, n_boot: int,
          seed: int) -> dict[str, list[float]]:
    """Fitted curve and pointwise 95 % band on a log grid around the sizes.

    The replicates are those of :func:`bootstrap_power_law` with the same seed (paired
    resampling of texts): one fit per replicate, percentiles of the curves per grid point.
    """
    grid = np.geomspace(sizes.min() / 1.25, sizes.max() * 1.25, BAND_POINTS)
    idx = resample_indices(np.random.default_rng(seed), n_boot, rows.shape[1])
    values = model_statistic(rows[:, idx], kind)  # (models, n_boot)
    fits = [fit_power_law(sizes, values[:, r], offset=offset) for r in range(n_boot)]
    curves = np.array([f.a * grid**f.b + f.c for f in fits])
    low, high = np.quantile(curves, [0.025, 0.975], axis=0)
    return {"sizes": grid.tolist(), "low": low.tolist(), "high": high.tolist()}


def fit_series(sizes: Sequence[float], results: Sequence[Sequence[Mapping[str, Any]]], *,
               offset: bool = False, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Power-law fits of every statistic of :data:`SERIES_STATISTICS` against ``sizes``.

    Args:
        sizes: parameter count of each model.
        results: each model's per-text records (``id``, ``entropy``, ``matrix_entropy``).

    Returns:
        ``{"ids": texts every model scored (first model's order), "fits": {statistic:
        {"values": per model, "a", "b", "c", "r2", "ci95": {"a": [lo, hi], "b": ...},
        "band": {"sizes", "fit", "low", "high"}}}}``.

    Raises:
        ScoreError: no text was scored by every model.
    """
    by_id = [{r["id"]: r for r in model} for model in results]
    ids = [i for i in by_id[0] if all(i in other for other in by_id[1:])]
    if not ids:
        raise ScoreError("no text was scored by every model of the series")
    P = np.asarray(sizes, dtype=np.float64)
    fits: dict[str, Any] = {}
    for name, (field, kind) in SERIES_STATISTICS.items():
        rows = np.array([[model[i][field] for i in ids] for model in by_id], dtype=np.float64)
        fit = fit_power_law(P, model_statistic(rows, kind), offset=offset)
        ci = bootstrap_power_law(P, rows, kind, offset=offset, n_boot=n_boot, seed=seed)
        band = _band(P, rows, kind, offset, n_boot, seed)
        band["fit"] = [fit.a * p**fit.b + fit.c for p in band["sizes"]]
        fits[name] = {"values": model_statistic(rows, kind).tolist(), **fit._asdict(),
                      "ci95": {k: list(v) for k, v in ci.items()}, "band": band}
    return {"ids": ids, "fits": fits}


def _member_config(config: ScalingConfig, model: str, name: str) -> DiffErankConfig:
    shared = {k: v for k, v in config.to_dict().items() if k in DiffErankConfig.__dataclass_fields__}
    out = None if config.out is None else str(member_dir(config.out, name))
    # seed 0: a member's numbers do not depend on it, and resuming must not either
    return DiffErankConfig(**{**shared, "model": model, "out": out, "seed": 0})


def run_scaling(config: ScalingConfig) -> dict[str, Any]:
    """Score every model of ``config.models`` and fit the series (see the module doc).

    Returns the ``scaling.json`` document (also written to ``config.out`` unless None):
    ``name``, ``models`` (per model: ``name``, ``model``, ``parameters``, ``source``,
    ``hidden_size``, ``n_samples``, ``n_errors``, ``entropy``, ``erank``,
    ``matrix_entropy``), ``n_texts`` (texts in the fit), ``offset``, ``n_boot``, ``seed``,
    ``fits`` (:func:`fit_series`) and ``provenance``.
    """
    names = [member_name(m) for m in config.models]
    if len(set(names)) != len(names):
        raise ValueError(f"two models would share a member folder name: {names}")
    data = open_text_data(config)
    identity = {**config.identity(), "data": data[1]["fingerprint"]}
    identity.pop("seed")  # the fit is redone on every run; only the members' numbers count
    with nullcontext() if config.out is None else owned(config.out, config.overwrite):
        if config.out is not None:  # the series' own folder holds config.json, members/ and scaling.json
            check(config.out, "scaling", identity, config.resume, config.overwrite)
            claim(config.out, {"command": "scaling", "config": config.to_dict(), "identity": identity})
        doc = _score_series(config, names, data)
        if config.out is not None:
            write_series(config.out, "scaling", doc)
    return doc


def _score_series(config: ScalingConfig, names: list[str], data: TextData) -> dict[str, Any]:
    """Every member scored (or read back), then the fits: the ``scaling.json`` document."""
    members = [run_member(_member_config(config, model, name), data)
               for model, name in zip(config.models, names, strict=True)]
    models = [{"name": name, "model": model, "parameters": s["provenance"]["parameters"],
               "source": s["provenance"]["source"],
               **{k: s.get(k) for k in ("hidden_size", "n_samples", "n_errors", "entropy",
                                        "erank", "matrix_entropy")}}
              for name, model, s in zip(names, config.models, [m.summary for m in members],
                                        strict=True)]
    series = fit_series([m["parameters"] for m in models], [m.results for m in members],
                        offset=config.offset, n_boot=config.n_boot, seed=config.seed)
    return {"name": config.model, "models": models, "n_texts": len(series["ids"]),
            "offset": config.offset, "n_boot": config.n_boot, "seed": config.seed,
            "fits": series["fits"],
            "provenance": {"data": data[1], "versions": software_versions(),
                           "max_length": config.max_length, "dtype": config.dtype}}
