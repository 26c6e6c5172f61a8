"""Every option of a run, in one frozen dataclass per command, validated before any model loads.

:class:`ScoreConfig` (``mm-align score`` / :func:`mm_align.score`) and
:class:`DiffErankConfig` (``mm-align diff-erank`` / :func:`mm_align.diff_erank`) are the single
source of their options: the CLI builds its argparse options from their fields
(:func:`add_arguments`), the Python API takes them or keyword arguments, ``config.json`` is
their serialisation (:meth:`RunConfig.to_dict`), and ``--resume`` compares the fields that
change numbers (:meth:`RunConfig.identity`) and names those that differ.

>>> ScoreConfig(model="m", data="d", layers="0, -1").layers
(0, -1)
>>> ScoreConfig(model="m", data="d", batch_size=0)
Traceback (most recent call last):
...
ValueError: batch_size must be >= 1, got 0
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, Literal, TypeVar

from mm_align.constants import (
    DEEPSTACK_READINGS,
    DEFAULT_MAX_ASPECT_RATIO,
    DEFAULT_MAX_PIXELS,
    PROMPTS,
    VISION_VIEWS,
)
from mm_align.options import (
    EXTRA_METRICS,
    LayerSpec,
    add_arguments,
    at_least,
    field_doc,
    flag_help,
    one_of,
    option,
    parse_ks,
    parse_layers,
    parse_metrics,
    parse_model_args,
    positive,
)

__all__ = [
    "BASELINES",
    "CONTROLS",
    "DTYPE_NAMES",
    "EXTRA_METRICS",
    "MIR_TEXTS",
    "PERTURBATIONS",
    "POOLED_FEATURES",
    "DiffErankConfig",
    "RunConfig",
    "ScoreConfig",
    "SweepConfig",
    "add_arguments",
    "field_doc",
    "flag_help",
    "parse_layers",
    "parse_metrics",
    "parse_model_args",
]

# Names only: the transforms live in mm_align.pipeline.controls, which needs PIL and numpy.
CONTROLS = ("shuffled", "image-only-noise")
PERTURBATIONS = ("rotate90", "rotate180", "hflip", "grayscale")
BASELINES = ("untrained",)
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
PAPER_SAMPLE_SEED = 123  # the official Diff-eRank script draws its 10,000 texts with seed 123
TEXT_OVERFLOWS = ("refuse", "truncate")
# What CKA, mutual k-NN and CKNNA compare: platonic-rep's prepared features or the raw pooled states.
POOLED_FEATURES = ("platonic", "raw")
# MIR's text rows: every joint-pass token after the image (MIR's script) or the text's own tokens.
MIR_TEXTS = ("after-image", "content")

_C = TypeVar("_C", bound="RunConfig")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Options every scoring command shares."""

    command: ClassVar[str] = ""

    model: str = option(None, "checkpoint folder or hub id", "Model", flags=("--model",), required=True)
    data: str = option(None, "the data set (see the README's formats)", "Data", flags=("--data",),
                       required=True)
    out: str | None = option(None, "run directory to write (API: None keeps the run in memory)",
                             "Run", flags=("--out",), required=True)
    device: str = option("auto", "torch device: auto (cuda if available, else mps, else cpu), "
                         "cpu, cuda, cuda:1, mps", "Model")
    dtype: str = option("float32", "model precision; auto: the checkpoint's own (metrics are "
                        "always float64)", "Model", identity=True, choices=DTYPE_NAMES)
    batch_size: int = option(8, "samples per forward pass; results do not depend on it", "Run",
                             type=int)
    limit: int | None = option(None, "score only the first N samples", "Data", type=int,
                               metavar="N")
    resume: bool = option(False, "continue an interrupted run in --out", "Run")
    overwrite: bool = option(False, "delete the run already in --out (its results and report) "
                             "and start over", "Run")
    seed: int = option(0, "seed of random controls, baselines and the bootstrap", "Run",
                       identity=True, type=int)
    strict: bool = option(False, "stop at the first bad sample instead of recording it", "Run")
    n_boot: int = option(1000, "bootstrap replicates of the 95%% intervals", "Run", type=int)
    progress: bool = option(True, "hide the progress bars (API: progress=False)", "Run",
                            doc="show progress bars while scoring (False: none)",
                            flags=("--no-progress",))
    revision: str | None = option(None, "hub branch, tag or commit of --model", "Model",
                                  identity=True, metavar="REV")
    trust_remote_code: bool = option(False, "run Python code shipped with the checkpoint "
                                     "(config auto_map); without it such a checkpoint is refused",
                                     "Model")
    attn_implementation: str | None = option(None, "attention kernel: eager, sdpa, "
                                             "flash_attention_2, ... (default: transformers' choice)",
                                             "Model", metavar="NAME")
    model_args: dict[str, Any] = option(  # noqa: RUF009 - option() is a field()
        None, "more from_pretrained arguments, lmms-eval style: key=value,key=value (ints, floats "
        "and true/false converted), e.g. gguf_file=model.Q4_1.gguf", "Model", identity=True,
        metavar="K=V,...")
    sample: int | None = option(None, "a seeded random subset of N samples, in data set order (the "
                                "paper's protocol: 10000, seed 123); --limit takes the first N",
                                "Data", identity=True, type=int, metavar="N")
    sample_seed: int = option(PAPER_SAMPLE_SEED, "seed of the --sample draw", "Data", identity=True,
                              type=int, metavar="SEED")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # paths are kept as strings: config.json is JSON
            if isinstance(getattr(self, f.name), PurePath):
                object.__setattr__(self, f.name, str(getattr(self, f.name)))
        for name in ("model", "data"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty path or id, got {value!r}")
        at_least("batch_size", self.batch_size, 1)
        at_least("limit", self.limit, 1)
        at_least("n_boot", self.n_boot, 1)
        at_least("sample", self.sample, 1)
        if self.limit is not None and self.sample is not None:
            raise ValueError("limit takes the first N samples and sample a random N: choose one")
        if self.resume and self.overwrite:
            raise ValueError("resume continues the run in out and overwrite deletes it: choose one")
        one_of("dtype", self.dtype, DTYPE_NAMES)
        object.__setattr__(self, "model_args", parse_model_args(self.model_args))

    @classmethod
    def from_options(cls: type[_C], **options: Any) -> _C:
        """A config from keyword arguments; an unknown one is an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**options)

    @classmethod
    def from_args(cls: type[_C], args: argparse.Namespace) -> _C:
        """The config of parsed CLI arguments (see :func:`add_arguments`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def identity(self) -> dict[str, Any]:
        """The settings that change the numbers: resuming must keep them."""
        d = self.to_dict()
        return {f.name: d[f.name] for f in dataclasses.fields(self) if f.metadata.get("identity")}

    def replace(self: _C, **changes: Any) -> _C:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(RunConfig):
    """Every option of ``mm-align score``; see ``mm-align score --help`` for each."""

    command: ClassVar[str] = "score"

    device_map: str | None = option(None, "e.g. 'auto': spread a large model over all visible "
                                    "GPUs (accelerate); overrides --device", "Model")
    prompt: Literal["plain", "chat"] = option("plain", "plain: image then text, no template; chat: the chat template",
                         "Model", identity=True, choices=PROMPTS)
    include_special: bool = option(False, "count special and template tokens in the LLM stages",
                                   "Model", identity=True)
    count_first_position: bool = option(False, "count the sequence's first position in the LLM stages "
                                        "(by default never counted: an attention sink; see docs/CHOICES.md)",
                                        "Model", identity=True)
    deepstack: Literal["output", "injected"] = option(
        "output", "Qwen3-VL's layers 1..k at the image tokens: output (the block's output, as "
        "output_hidden_states) or injected (plus the deepstack features the next block receives)",
        "Model", identity=True, choices=DEEPSTACK_READINGS)
    projector: str | None = option(None, "swap in connector weights (.safetensors or LLaVA "
                                   "mm_projector.bin) before scoring", "Model", metavar="FILE")
    image_root: str | None = option(None, "image folder for detail_23k-style data", "Data")
    image_column: str | None = option(None, "image column, in every format (default: detected: image, "
                                      "img, jpg, png, file_name, filename, path, ...)", "Data")
    text_column: str | None = option(None, "text column, in every format (default: detected: text, "
                                     "caption, txt, sentence; else instruction + response)", "Data")
    id_column: str | None = option(None, "id column, in every format (default: id if present, else ids "
                                   "from the content; __key__ keeps WebDataset keys)", "Data")
    split: str | None = option(None, "split of a HF dataset dict", "Data")
    streaming: bool = option(False, "stream a hub data set instead of downloading it (parquet and "
                             "WebDataset are always streamed)", "Data")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse images with more pixels than this", "Data",
                             identity=True, type=int)
    layers: LayerSpec = option(  # noqa: RUF009 - option() is a dataclass field()
        None, "LLM layers to sweep besides the last: 'all' or e.g. '0,8,-1'", "Analyses", identity=True)
    controls: tuple[str, ...] = option((), "controls and perturbations, each run into "
                                       "OUT/controls/NAME", "Analyses", flags=())
    baseline: str | None = option(None, "untrained: also score with the LLM re-initialised "
                                  "(seeded); adds the LLM stages' Diff-eRank", "Analyses",
                                  choices=BASELINES)
    max_text_tokens: int | None = option(None, "longest text in tokens (default: the model's "
                                         "context, max_position_embeddings of its text config)",
                                         "Data", identity=True, type=int, metavar="N")
    text_overflow: str = option("refuse", "a longer text: refuse (a bad sample, in errors.jsonl) "
                                "or truncate (scored on its first N tokens, marked truncated)",
                                "Data", identity=True, choices=TEXT_OVERFLOWS)
    max_audio_seconds: float | None = option(None, "longest audio clip in seconds (audio models; default: "
                                             "no limit, but one-window families refuse clips over their "
                                             "window)", "Data", identity=True, type=float, metavar="S")
    audio_overflow: str = option("refuse", "a longer clip: refuse (a bad sample, in errors.jsonl) or "
                                 "truncate (scored on its first S seconds, marked audio_truncated)",
                                 "Data", identity=True, choices=TEXT_OVERFLOWS)
    resize_to_max_pixels: bool = option(False, "shrink images over --max-pixels (aspect kept; the "
                                        "original size is recorded) instead of refusing them",
                                        "Data", identity=True)
    max_aspect_ratio: float = option(DEFAULT_MAX_ASPECT_RATIO, "refuse images whose longer side is "
                                     "more than this many times the shorter (processors scale the "
                                     "short side up: a thin strip costs gigabytes)", "Data",
                                     identity=True, type=float, metavar="K")
    num_frames: int | None = option(None, "frames of a video clip, evenly spread (default: the "
                                    "family's, see `mm-align families`)", "Data", identity=True,
                                    type=int, metavar="N")
    fps: float | None = option(None, "frames per second of a video clip instead of --num-frames "
                               "(Qwen-VL's default: 2)", "Data", identity=True, type=float, metavar="F")
    max_visual_tokens: int | None = option(None, "refuse a sample with more image or video tokens "
                                           "(default: the model's context)", "Data", identity=True,
                                           type=int, metavar="N")
    num_workers: int = option(0, "threads that load and decode images while the model runs "
                              "(0: in the main thread); results do not depend on it", "Run",
                              type=int, metavar="N")
    vision_view: Literal["patches", "merged"] = option("patches", "eRank1's rows: patches (the vision encoder's output rows) "
                              "or merged (the rows the connector's first layer takes, e.g. Qwen's "
                              "2x2 groups); see docs/CHOICES.md", "Model", identity=True,
                              choices=VISION_VIEWS)
    # given as "rankme,cka" on the CLI, a sorted tuple of names after __post_init__
    metrics: tuple[str, ...] = option((), "alignment metrics besides eRank, from the same states: "
                                      f"{','.join(EXTRA_METRICS)} (see docs/CHOICES.md)", "Analyses",
                                      identity=True, metavar="NAME,...")
    knn_k: int = option(10, "neighbours per sample of --metrics knn and cknna (the platonic-rep "
                        "paper's 10)", "Analyses", identity=True, type=int, metavar="K")
    pooled_features: Literal["platonic", "raw"] = option(
        "platonic", "what --metrics cka, knn and cknna compare: platonic (platonic-rep's "
        "measure_alignment: values clamped at the exact 0.95 quantile of |x|, rows L2-normalised) "
        "or raw (the pooled states as they are)", "Analyses", identity=True, choices=POOLED_FEATURES)
    mir_samples: int = option(100, "--metrics mir uses the first N selected samples (MIR's "
                              "protocol: 100)", "Analyses", identity=True, type=int, metavar="N")
    mir_text: Literal["after-image", "content"] = option(
        "after-image", "MIR's text rows: after-image (every joint-pass token after the image "
        "tokens: markers, template, text, EOS, as MIR's mir.py) or content (the text's own tokens)",
        "Analyses", identity=True, choices=MIR_TEXTS)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "layers", parse_layers(self.layers))
        object.__setattr__(self, "metrics", parse_metrics(self.metrics))
        at_least("knn_k", self.knn_k, 1)
        at_least("mir_samples", self.mir_samples, 1)
        one_of("pooled_features", self.pooled_features, POOLED_FEATURES)
        one_of("mir_text", self.mir_text, MIR_TEXTS)
        object.__setattr__(self, "controls", tuple(self.controls))
        for name in self.controls:
            one_of("control", name, (*CONTROLS, *PERTURBATIONS))
        if self.baseline is not None:
            one_of("baseline", self.baseline, BASELINES)
        one_of("prompt", self.prompt, PROMPTS)
        at_least("max_pixels", self.max_pixels, 1)
        at_least("max_text_tokens", self.max_text_tokens, 1)
        at_least("num_frames", self.num_frames, 1)
        at_least("max_visual_tokens", self.max_visual_tokens, 1)
        if self.fps is not None:
            positive("fps", self.fps)
        if self.fps is not None and self.num_frames is not None:
            raise ValueError("give num_frames (--num-frames) or fps (--fps), not both")
        one_of("text_overflow", self.text_overflow, TEXT_OVERFLOWS)
        one_of("audio_overflow", self.audio_overflow, TEXT_OVERFLOWS)
        if self.max_audio_seconds is not None and not self.max_audio_seconds > 0:  # also refuses NaN
            raise ValueError(f"max_audio_seconds must be > 0, got {self.max_audio_seconds}")
        one_of("vision_view", self.vision_view, VISION_VIEWS)
        one_of("deepstack", self.deepstack, DEEPSTACK_READINGS)
        at_least("num_workers", self.num_workers, 0)
        if not self.max_aspect_ratio >= 1:  # also refuses NaN
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")

    @classmethod
    def from_args(cls: type[_C], args: argparse.Namespace) -> _C:
        merged = argparse.Namespace(**vars(args))
        merged.controls = (*getattr(args, "control", ()), *getattr(args, "perturb", ()))
        return super().from_args(merged)


@dataclass(frozen=True, kw_only=True)
class DiffErankConfig(RunConfig):
    """Every option of ``mm-align diff-erank`` (a text LLM against its seeded random init)."""

    command: ClassVar[str] = "diff-erank"

    max_length: int = option(2048, "truncate texts to this many tokens (the paper's 2048)", "Data",
                             identity=True, type=int)
    text_column: str | None = option(None, "text column of JSONL/CSV/HF data (default: text)",
                                     "Data", identity=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("max_length", self.max_length, 2)


# ---- The companion paper's tools (GEOMETRY.md; docs/CHOICES.md) ---------------------------

GAIN_FORMS = ("gram", "covariance")
INTERVENTIONS = ("remove", "mask")


@dataclass(frozen=True, kw_only=True)
class ScalingConfig(DiffErankConfig):
    """``mm-align scaling``: entropy of a series of text LLMs against their size.

    ``models`` are the checkpoints (``--model``, repeated); ``model`` is only the series'
    name. Each model is scored into ``OUT/members/NAME`` with the settings of
    :class:`DiffErankConfig` (trained model only)."""

    command: ClassVar[str] = "scaling"

    model: str = option("series", "name of the series, shown in the report", "Model",
                        flags=("--name",))
    models: tuple[str, ...] = option((), "a model of the series; repeat --model for each", "Model",
                                     flags=())
    offset: bool = option(False, "fit E = a P^b + c instead of E = a P^b", "Analyses")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if len(self.models) < 2:
            raise ValueError(f"a scaling fit needs at least 2 models, got {len(self.models)}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"a model is given twice: {list(self.models)}")


@dataclass(frozen=True, kw_only=True)
class InfoGainConfig(DiffErankConfig):
    """``mm-align info-gain``: per-token information gain along each text at one layer."""

    command: ClassVar[str] = "info-gain"

    layer: int = option(-1, "hidden state to use (0 = embeddings, -1 = last, after the final "
                        "norm)", "Analyses", identity=True, type=int)
    lam: float = option(1.0, "ridge parameter lambda of the log-det entropy", "Analyses",
                        identity=True, type=float)
    form: Literal["gram", "covariance"] = option("gram", "gram: 1/2 ln(lam + rho); covariance: 1/2 ln(1 + rho/lam)",
                       "Analyses", identity=True, choices=GAIN_FORMS)
    half: bool = option(True, "drop the 1/2 factor of the log-det entropy", "Analyses",
                        doc="keep the 1/2 factor of the log-det entropy (1/2 ln det; False: ln det)",
                        identity=True, flags=("--no-half",))
    normalize_rows: bool = option(True, "use raw token states instead of unit-normalised ones",
                                  "Analyses", identity=True, flags=("--raw-states",),
                                  doc="scale every token state to unit length before the entropy "
                                  "(False: the raw states)")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("lam", self.lam)
        one_of("form", self.form, GAIN_FORMS)


@dataclass(frozen=True, kw_only=True)
class AttributionConfig(DiffErankConfig):
    """``mm-align attribution``: Lasso vs attention attribution of the last token, and the
    keep-only / delete-k interventions of each selector."""

    command: ClassVar[str] = "attribution"

    layer: int = option(-1, "hidden state of the Lasso (0 = embeddings, -1 = last); the "
                        "attention is that of the block producing it", "Analyses",
                        identity=True, type=int)
    # given as "1,2,4,8" (shown so in --help), a tuple of ints after __post_init__
    k: tuple[int, ...] = option("1,2,4,8", "numbers of selected tokens",  # type: ignore[assignment]
                                "Analyses", identity=True, metavar="K,...")
    alpha_ratio: float = option(0.05, "Lasso alpha as a fraction of each text's alpha_max "
                                "(the smallest alpha with all-zero weights)", "Analyses",
                                identity=True, type=float)
    random_draws: int = option(5, "random selections per text and k (seeded by --seed)",
                               "Analyses", identity=True, type=int)
    keep_first: bool = option(True, "let position 0 (BOS, an attention sink) be selected like "
                              "any token; by default it is never selected and always kept",
                              "Analyses", identity=True, flags=("--select-first",),
                              doc="position 0 (BOS, an attention sink) is never selected and "
                              "always kept (False: selected like any token)")
    intervention: str = option("remove", "remove: rerun on the kept tokens only (positions "
                               "renumbered); mask: full length, dropped tokens masked out of "
                               "attention, original positions", "Analyses", identity=True,
                               choices=INTERVENTIONS)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "k", parse_ks(self.k))
        if not 0 < self.alpha_ratio < 1:
            raise ValueError(f"alpha_ratio must be in (0, 1), got {self.alpha_ratio}")
        at_least("random_draws", self.random_draws, 1)
        one_of("intervention", self.intervention, INTERVENTIONS)


# ---- Series of VLMs: checkpoints or projectors (``mm-align sweep``) --------------------------

# A training step in a checkpoint's name: the number after checkpoint / ckpt / step / iter
# (transformers' Trainer writes checkpoint-1200, DeepSpeed global_step1200); a bare number,
# as in the seed of "tiny-llava-s1", is not a step.
DEFAULT_STEP_FROM = r"(?:checkpoint|ckpt|step|iter)[-_]?(\d+)"


def _parse_steps(steps: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """``"100,200"`` or integers -> a tuple of steps >= 0, in the order given."""
    try:
        values = tuple(int(v) for v in (steps.split(",") if isinstance(steps, str) else steps))
    except ValueError:
        raise ValueError(f"steps takes comma-separated integers, not {steps!r}") from None
    if any(v < 0 for v in values):
        raise ValueError(f"steps must be >= 0, got {steps!r}")
    return values


@dataclass(frozen=True, kw_only=True)
class SweepConfig(ScoreConfig):
    """``mm-align sweep``: one data set scored by many checkpoints, or by one base model with
    many projector files, each member into ``OUT/members/NAME``, with a trend report.

    ``models``: checkpoint folders, globs (``ckpt-*``) or hub ids (``org/name@revision``);
    with ``projectors``, exactly one model: the base every projector is swapped into. Every
    other field is the members' :class:`ScoreConfig`."""

    command: ClassVar[str] = "sweep"

    model: str = option("sweep", "name of the sweep, shown in the report", "Model", flags=("--name",),
                        metavar="NAME")
    models: tuple[str, ...] = option((), "a checkpoint of the series; repeat --model", "Model", flags=())
    projectors: tuple[str, ...] = option((), "a projector file; repeat --projector", "Model", flags=())
    projector: str | None = option(None, "(one per member: see projectors)", "Model", flags=())
    reuse_vision: bool = option(True, "run the vision tower for every member instead of replaying "
                                "its cached output (see docs/CHOICES.md)", "Analyses",
                                doc="replay the cached vision tower output for members that share "
                                "the tower (False: run it for every member)",
                                flags=("--no-reuse-vision",))
    feature_cache: str | None = option(None, "folder of the cached vision features (default: "
                                       "OUT/features); share it between sweeps of one vision tower",
                                       "Analyses", metavar="DIR")
    step_from: str = option(DEFAULT_STEP_FROM, "regular expression that reads a checkpoint's "
                            "training step from its folder name (its first group, else the whole "
                            "match; the last match counts); members are placed by step when every "
                            "name gives a distinct one, else in order", "Analyses", metavar="REGEX")
    # given as "100,200,300" on the CLI, a tuple of ints after __post_init__
    steps: tuple[int, ...] = option((), "the members' training steps in member order (overrides "
                                    "--step-from)", "Analyses", metavar="N,...")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        object.__setattr__(self, "projectors", tuple(str(p) for p in self.projectors))
        if not self.models:
            raise ValueError("a sweep needs at least one --model")
        if self.projectors and len(self.models) != 1:
            raise ValueError(f"a projector sweep takes one base --model, got {len(self.models)}")
        if self.projector is not None:
            raise ValueError("a sweep takes its projector files as projectors=[...] (--projector, repeated)")
        object.__setattr__(self, "steps", _parse_steps(self.steps))
        try:
            re.compile(self.step_from)
        except re.error as err:
            raise ValueError(f"step_from {self.step_from!r} is not a regular expression: {err}") from None
