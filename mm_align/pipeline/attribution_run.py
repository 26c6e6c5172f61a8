"""``attribution``: which earlier tokens carry the last token? Lasso against attention, and
keep-only / delete-k interventions of each selector (GEOMETRY.md Q5-Q6).

Per text, one forward pass of the causal LM (eager attention) gives, through hooks,

* Z, the hidden states at ``layer`` (``output_hidden_states`` convention, L >= 1);
* the attention probabilities of the block producing that state (block L-1), of the last
  query over the keys, averaged over heads;
* the next-token logits after the last token (``p_full``).

The candidates are the earlier tokens, without position 0 unless ``keep_first`` is off
(position 0 is the BOS of OPT and Llama tokenizers, an attention sink). Selectors of k
candidates: the Lasso's top-k by ``|w|`` (:func:`~mm_align.metrics.attribution.
lasso_token_weights`, alpha = ``alpha_ratio * alpha_max`` of the text), the attention's
top-k, and ``random_draws`` random k-subsets (seeded by seed, text index, k and draw). For
each, two interventions rerun the LM: keep-only (the selected tokens plus the last, and
position 0 when it is not a candidate) and delete-k (every token but the selected). They
are compared with the full context by ``KL(p_full || p_intervened)`` and top-1 agreement.
``intervention="remove"`` reruns on the kept tokens only (positions renumbered, as a
shorter text); ``"mask"`` keeps the full length with the dropped tokens masked out of
attention and the original position ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from mm_align.adapters.batching import collate
from mm_align.adapters.modules import DTYPE_KWARG, probe_module, resolve_dtype
from mm_align.adapters.text import TextAdapter
from mm_align.capture import capture, output_of
from mm_align.config import AttributionConfig
from mm_align.data import Sample
from mm_align.metrics import attribution as attr
from mm_align.pipeline.diff_erank import TEXT_PREVIEW
from mm_align.pipeline.loading import config_kwargs, load_kwargs
from mm_align.pipeline.reduce import MetricError
from mm_align.pipeline.result import ScoreResult
from mm_align.pipeline.text_run import open_text_data, run_text_task

__all__ = ["MODES", "SELECTORS", "AttributionTask", "LMProbe", "run_attribution"]

SELECTORS = ("lasso", "attention", "random")
MODES = ("keep_only", "delete")


@dataclass
class LMProbe:
    """A causal LM (eager attention) and a :class:`TextAdapter` over its base model, which
    knows where each layer's hidden state appears."""

    lm: PreTrainedModel
    states: TextAdapter

    @classmethod
    def load(cls, config: AttributionConfig) -> LMProbe:
        options = load_kwargs(config)
        device, dtype = options.pop("device"), options.pop("dtype")
        tokenizer = AutoTokenizer.from_pretrained(config.model, **config_kwargs(options))
        # eager attention: the only implementation whose probabilities a hook can read
        lm = AutoModelForCausalLM.from_pretrained(
            config.model, **{**options, "attn_implementation": "eager", DTYPE_KWARG: resolve_dtype(dtype)}
        ).to(device).eval()
        # OPT's causal LM calls its decoder directly, never OPTModel.forward: the hooks go
        # on the module that runs (OPTDecoder; LlamaModel and the like for the others).
        stack = getattr(lm.base_model, "decoder", lm.base_model)
        return cls(lm, TextAdapter(stack, tokenizer, max_length=config.max_length))

    @property
    def config(self) -> Any:
        return self.lm.config

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.dtype

    @property
    def device(self) -> torch.device:
        return self.lm.device

    def attention_module(self, layer: int) -> torch.nn.Module:
        """The attention of the block producing hidden state ``layer`` (block L-1)."""
        index = self.states.layer_index(layer)
        if index == 0:
            raise ValueError("layer 0 (the embeddings) has no attention block; use a layer >= 1")
        block = self.states.decoder_layers[index - 1]
        return probe_module(block, ("self_attn", "attn", "attention"), "attention")

    def full(self, ids: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One unpadded text ``(1, T)`` -> states ``(T, d)``, head-averaged attention of the
        last query ``(T,)`` and next-token logits ``(V,)``, all float64 on the CPU."""
        taps = {"state": self.states.layer_tap(layer),
                "attn": output_of(self.attention_module(layer), pick=_probabilities)}
        with torch.inference_mode(), capture(taps) as got:
            out = self.lm(input_ids=ids, use_cache=False, logits_to_keep=1)
        attention = got["attn"][0, :, -1, :].mean(0)
        return (got["state"][0].double().cpu(), attention.double().cpu(),
                out.logits[0, -1].double().cpu())

    def next_token_logits(self, ids: torch.Tensor, kept: Sequence[Sequence[int]], mode: str,
                          batch_size: int) -> torch.Tensor:
        """Next-token logits ``(len(kept), V)`` after each intervention (see the module doc)."""
        rows = []
        for start in range(0, len(kept), batch_size):
            rows.append(self._batch(ids, kept[start : start + batch_size], mode))
        return torch.cat(rows)

    def _batch(self, ids: torch.Tensor, kept: Sequence[Sequence[int]], mode: str) -> torch.Tensor:
        T = ids.shape[1]
        if mode == "remove":
            samples = [{"input_ids": ids[:, list(k)], "attention_mask": torch.ones(1, len(k), dtype=torch.long)}
                       for k in kept]
            extra: dict[str, Any] = {}
        else:  # mask: full length, original positions
            masks = [torch.zeros(1, T, dtype=torch.long).index_fill_(1, torch.tensor(list(k)), 1)
                     for k in kept]
            samples = [{"input_ids": ids, "attention_mask": m} for m in masks]
            extra = {"position_ids": torch.arange(T).expand(len(kept), T).to(self.device)}
        batch = {k: v.to(self.device) for k, v in collate(samples, self.states._pad_id).items()}
        lasts = [len(k) - 1 if mode == "remove" else T - 1 for k in kept]
        keep = sorted(set(lasts))
        with torch.inference_mode():
            logits = self.lm(**batch, **extra, use_cache=False,
                             logits_to_keep=torch.tensor(keep, device=self.device)).logits
        return torch.stack([logits[b, keep.index(last)] for b, last in enumerate(lasts)]).double().cpu()


def _probabilities(output: Any) -> torch.Tensor:
    """The attention probabilities ``(B, heads, queries, keys)`` an attention module returns
    second; only eager attention computes them."""
    probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
    if not isinstance(probs, torch.Tensor) or probs.ndim != 4:
        raise RuntimeError("the attention module returned no probabilities (not eager attention?)")
    return probs


def _random_seed(seed: int, index: int, k: int, draw: int) -> int:
    """A seed for one random selection, independent across texts, ks and draws."""
    return int(np.random.SeedSequence([seed, index, k, draw]).generate_state(1)[0])


@dataclass
class AttributionTask:
    """The :class:`~mm_align.pipeline.scorer.Task` of ``attribution`` (see the module doc)."""

    probe: LMProbe
    config: AttributionConfig

    def __post_init__(self) -> None:
        self.probe.attention_module(self.config.layer)  # fail before any text: layer 0

    def prepare(self, sample: Sample) -> tuple[Sample, bool]:
        content, truncated = self.probe.states.count_tokens(sample.check_text())
        if content < 2:
            raise MetricError(f"text has {content} token(s) besides special tokens; "
                              "attribution needs the last token and an earlier one")
        return sample, truncated

    def represent(self, prepared: list[tuple[Sample, bool]]) -> list[dict[str, Any]]:
        return [self._one(sample) for sample, _ in prepared]

    def _selections(self, sample: Sample, states: torch.Tensor, attention: torch.Tensor
                    ) -> dict[str, Any]:
        """Candidates, Lasso fit, and the selected positions per selector and k."""
        c, first = self.config, 0 if not self.config.keep_first else 1
        T = states.shape[0]
        candidates = list(range(first, T - 1))
        if not candidates:
            raise MetricError("no candidate token besides position 0 and the last")
        sub = states[first:]  # candidates and the last token
        alpha_max = attr.lasso_alpha_max(sub)
        weights = attr.lasso_token_weights(sub, alpha=c.alpha_ratio * alpha_max)
        scores = {"lasso": weights.abs(), "attention": attention[first : T - 1]}
        ks = [k for k in c.k if k <= len(candidates)]
        # selector -> k -> subsets (one for Lasso and attention, random_draws for random)
        chosen = {name: {k: [[first + i for i in attr.top_k(s, k)]] for k in ks}
                  for name, s in scores.items()}
        chosen["random"] = {k: [[first + i for i in attr.random_selection(
            len(candidates), k, _random_seed(c.seed, sample.index, k, d))]
            for d in range(c.random_draws)] for k in ks}
        return {"candidates": candidates, "alpha_max": alpha_max,
                "alpha": c.alpha_ratio * alpha_max, "weights": weights, "chosen": chosen}

    def _kept(self, T: int, selected: Sequence[int]) -> dict[str, list[int]]:
        keep = attr.keep_only_positions(T, selected)
        if self.config.keep_first and 0 not in keep:
            keep = [0, *keep]  # position 0 is not a candidate: always kept
        return {"keep_only": keep, "delete": attr.delete_positions(T, selected)}

    def _one(self, sample: Sample) -> dict[str, Any]:
        ids = self.probe.states._encode(sample.text)["input_ids"]
        states, attention, full = self.probe.full(ids.to(self.probe.device), self.config.layer)
        try:
            sel = self._selections(sample, states, attention)
        except ValueError as err:
            raise MetricError(str(err)) from None
        plan = [(name, k, subset) for name, by_k in sel["chosen"].items()
                for k, subsets in by_k.items() for subset in subsets]
        kept = [self._kept(ids.shape[1], subset) for _, _, subset in plan]
        logits = {mode: self.probe.next_token_logits(
            ids, [k[mode] for k in kept], self.config.intervention, self.config.batch_size)
            for mode in MODES}
        return {"states": states, "attention": attention, "full": full, "plan": plan,
                "logits": logits, **sel}

    def reduce(self, sample: Sample, prepared: tuple[Sample, bool], rep: dict[str, Any]
               ) -> dict[str, Any]:
        measures: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {
            m: {mode: {s: {} for s in SELECTORS} for mode in MODES} for m in ("kl", "top1")}
        for row, (name, k, _) in enumerate(rep["plan"]):
            for mode in MODES:
                q = rep["logits"][mode][row]
                for m, value in (("kl", attr.kl_divergence(rep["full"], q)),
                                 ("top1", attr.top1_agreement(rep["full"], q))):
                    measures[m][mode][name].setdefault(str(k), []).append(value)
        mean = {m: {mode: {s: {k: float(np.mean(v)) for k, v in by_k.items()}
                           for s, by_k in per_s.items()} for mode, per_s in per_mode.items()}
                for m, per_mode in measures.items()}
        first = rep["candidates"][0]
        r2 = {name: {str(k): float(np.mean([attr.selection_r2(rep["states"][first:],
                                                              [i - first for i in s])
                                             for s in subsets]))
                     for k, subsets in by_k.items()} for name, by_k in rep["chosen"].items()}
        return {"text": sample.text[:TEXT_PREVIEW], "tokens": int(rep["states"].shape[0]),
                "truncated": prepared[1], "candidates": rep["candidates"],
                "alpha": rep["alpha"], "alpha_max": rep["alpha_max"],
                "lasso_weights": rep["weights"].tolist(),
                "lasso_support": [first + i for i in attr.support(rep["weights"])],
                "attention": rep["attention"][first : -1].tolist(),
                "selected": {n: {str(k): subsets[0] for k, subsets in by_k.items()}
                             for n, by_k in rep["chosen"].items() if n != "random"},
                "selection_r2": r2, **mean}


def _mean_by_k(per_text: Sequence[dict[str, float]], ks: Sequence[int]) -> dict[str, float]:
    """``{k: mean over the texts that have a value for k}`` (texts with fewer than k
    candidates have none)."""
    out = {}
    for k in map(str, ks):
        values = [d[k] for d in per_text if k in d]
        if values:
            out[k] = float(np.mean(values))
    return out


def _win_rate(results: list[dict[str, Any]], ks: Sequence[int]) -> dict[str, dict[str, float]]:
    """Fraction of texts where Lasso's selection beats attention's: a lower KL when kept
    alone, a higher KL when deleted; ties count half."""
    out: dict[str, dict[str, float]] = {}
    for mode, sign in (("keep_only", -1.0), ("delete", 1.0)):
        out[mode] = {}
        for k in map(str, ks):
            d = [sign * (r["kl"][mode]["lasso"][k] - r["kl"][mode]["attention"][k])
                 for r in results if k in r["kl"][mode]["lasso"]]
            if d:
                out[mode][k] = float(np.mean([1.0 if x > 0 else 0.5 if x == 0 else 0.0 for x in d]))
    return out


def summarize_attribution(results: list[dict[str, Any]], n_errors: int,
                          provenance: dict[str, Any]) -> dict[str, Any]:
    """summary.json: ``analysis`` = "attribution", ``n_samples``, ``n_errors``,
    ``provenance``, ``curves`` = {"kl" | "top1": {mode: {selector: {k: mean}}}},
    ``lasso_win_rate`` = {mode: {k: rate}}, ``selection_r2`` = {selector: {k: mean}},
    ``texts_per_k`` and ``lasso_support_mean`` (mean number of non-zero weights)."""
    summary: dict[str, Any] = {"analysis": "attribution", "n_samples": len(results),
                               "n_errors": n_errors, "provenance": provenance}
    if not results:
        return summary
    ks = provenance["k"]
    summary.update(
        curves={m: {mode: {s: _mean_by_k([r[m][mode][s] for r in results], ks)
                           for s in SELECTORS} for mode in MODES} for m in ("kl", "top1")},
        lasso_win_rate=_win_rate(results, ks),
        selection_r2={s: _mean_by_k([r["selection_r2"][s] for r in results], ks)
                      for s in SELECTORS},
        texts_per_k={str(k): sum(len(r["candidates"]) >= k for r in results) for k in ks},
        lasso_support_mean=float(np.mean([len(r["lasso_support"]) for r in results])),
    )
    return summary


def run_attribution(config: AttributionConfig) -> ScoreResult:
    """Lasso vs attention attribution over ``config.data`` (see the module doc).

    Writes (or keeps in memory) ``results.jsonl`` (per text: ``id``, ``index``, ``text``,
    ``tokens``, ``truncated``, ``candidates`` (positions), ``alpha``, ``alpha_max``,
    ``lasso_weights`` and ``attention`` (one per candidate), ``lasso_support``,
    ``selected`` = {"lasso" | "attention": {k: positions}}, ``selection_r2`` = {selector:
    {k: R^2}}, ``kl`` and ``top1`` = {mode: {selector: {k: value}}}, random ones averaged
    over the draws), ``errors.jsonl``, ``config.json`` and ``summary.json``
    (:func:`summarize_attribution`).
    """
    settings = {key: getattr(config, key) for key in ("layer", "alpha_ratio", "random_draws",
                                                      "keep_first", "intervention")}
    settings.update(k=list(config.k), attention="block producing the layer, last query, "
                    "mean over heads", lasso="sklearn Lasso, no intercept, unit rows")
    return run_text_task(config, open_text_data(config), load=lambda: LMProbe.load(config),
                         task=lambda probe: AttributionTask(probe, config),
                         summarize=summarize_attribution, settings=settings)
