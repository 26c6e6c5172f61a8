"""The Python API: one function per CLI command, taking the same options as keyword arguments.

>>> import mm_align
>>> result = mm_align.score("runs/tiny-qwen", "data/sample", limit=4)   # doctest: +SKIP
>>> result.summary["image_text_alignment"], len(result.results)          # doctest: +SKIP

With ``out=None`` (the default here, unlike the CLI) nothing is written: the result object
holds the per-sample records, errors and summary, the same numbers a CLI run writes.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mm_align.config import DiffErankConfig, RunConfig, ScoreConfig
from mm_align.pipeline.result import ScoreResult
from mm_align.report_failures import ReportError, failing_reports, reports_fail

__all__ = ["ReportError", "compare", "diff_erank", "export", "failing_reports", "score", "sweep",
           "write_comparison", "write_report"]

log = logging.getLogger(__name__)

IN_MEMORY_DATA = "<in memory>"


def _name(thing: Any) -> str | None:
    return str(thing) if isinstance(thing, str | Path) else None


def score(
    model: Any, data: Any, out: str | Path | None = None, *, config: ScoreConfig | None = None,
    **options: Any,
) -> ScoreResult:
    """Score a VLM over an image-caption set; ``mm-align score`` in Python.

    Args:
        model: a checkpoint folder or hub id, or an adapter from :func:`mm_align.load_vlm`.
        data: a data set path or hub name (any format ``mm-align score --data`` takes), a
            ``datasets.Dataset``, or an iterable of ``(PIL.Image, str)`` pairs.
        out: the run directory to write (with its ``report.html``); None keeps the run in
            memory and writes nothing.
        config: a :class:`~mm_align.config.ScoreConfig`; ``model``/``data``/``out`` and
            ``options`` override its fields.
        options: any :class:`~mm_align.config.ScoreConfig` field, listed below.

    Returns:
        a :class:`~mm_align.pipeline.result.ScoreResult`.
    """
    from mm_align.pipeline.distributed import Workers
    from mm_align.pipeline.score import run_score

    fields = {"model": _name(model) or getattr(getattr(model, "model", None), "name_or_path", "adapter"),
              "data": _name(data) or IN_MEMORY_DATA, "out": None if out is None else str(out),
              **_adapter_options(model, options), **options}
    cfg = config.replace(**fields) if config else ScoreConfig.from_options(**fields)
    result = run_score(cfg, model=None if _name(model) else model, data=None if _name(data) else data)
    if cfg.out is not None and Workers.from_env().is_main:
        _report_quietly(cfg.out)
    return result


def _adapter_options(model: Any, options: dict[str, Any]) -> dict[str, Any]:
    """A loaded adapter's own prompt, special-token and vision-view options, so that the run
    records what the adapter does; asking for others is an error, not a silent mismatch."""
    own = dict(getattr(model, "options", {})) if not _name(model) else {}
    for key, value in own.items():
        if key in options and options[key] != value:
            raise ValueError(f"{key}={options[key]!r} differs from the loaded adapter's {value!r}; "
                             f"load it with mm_align.load_vlm(..., {key}={options[key]!r})")
    return own


def _report_quietly(out: str | Path | None) -> None:
    """Write the run's report; a failure is logged in one line (its traceback at debug level),
    never raised, since the numbers are on disk; inside :func:`failing_reports` it raises
    :class:`ReportError`."""
    if out is None:
        return
    log.info("writing the report to %s ...", Path(out) / "report.html")
    try:
        write_report(out)
    except Exception as err:  # the scores are safe on disk; a plotting failure must not hide them
        why = (f"could not write the report of {out} ({type(err).__name__}: {err}); the scores are "
               f"on disk: rebuild it with `mm-align report {out}`")
        if reports_fail():
            raise ReportError(why) from err
        log.error(why)
        log.debug("the report's traceback", exc_info=True)


def diff_erank(
    model: Any, data: str | Path, out: str | Path | None = None, *,
    config: DiffErankConfig | None = None, **options: Any,
) -> ScoreResult:
    """Diff-eRank of a text LLM (trained vs seeded random init); ``mm-align diff-erank``.

    ``model``: a checkpoint folder or hub id, or a :class:`~mm_align.adapters.text.TextAdapter`;
    ``options``: any :class:`~mm_align.config.DiffErankConfig` field.
    """
    from mm_align.pipeline.diff_erank import run_diff_erank

    fields = {"model": _name(model) or model.model.name_or_path, "data": str(data),
              "out": None if out is None else str(out), **options}
    cfg = config.replace(**fields) if config else DiffErankConfig.from_options(**fields)
    result = run_diff_erank(cfg, model=None if _name(model) else model)
    _report_quietly(cfg.out)
    return result


def compare(
    run_dirs: Sequence[str | Path], out: str | Path, *, allow_different_data: bool = False,
    labels: Sequence[str] | None = None,
) -> Path:
    """Compare runs against the first; writes ``OUT/compare.json`` and ``OUT/compare.html``
    and returns the page's path (see :mod:`mm_align.pipeline.comparison`). A sweep's
    directory stands for its members."""
    from mm_align.pipeline.comparison import compare as compute

    doc, runs = compute(run_dirs, allow_different_data=allow_different_data, labels=labels)
    return write_comparison(doc, runs, out)


def write_comparison(doc: dict[str, Any], runs: dict[str, Any], out: str | Path) -> Path:
    """Write a computed comparison to ``OUT/compare.json`` and ``OUT/compare.html``."""
    from mm_align.report import render_compare

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "compare.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    page = root / "compare.html"
    page.write_text(render_compare(doc, runs), encoding="utf-8")
    return page


def export(run_dirs: Sequence[str | Path], fmt: str = "csv", out: str | Path | None = None,
           labels: Sequence[str] | None = None, digits: int = 4, intervals: str | None = None) -> str:
    """One row per run (``mm-align export``): the table as ``csv``, ``markdown``, ``json`` or
    ``latex`` text, also written to ``out`` when given. A sweep's directory stands for its
    members (with their ``step``); a compare folder gives one row per compared run (its
    paired differences). ``digits``: significant figures of Markdown and LaTeX values;
    ``intervals``: ``pm`` or ``brackets``. Columns: :mod:`mm_align.pipeline.export`."""
    from mm_align.pipeline.export import folder_rows
    from mm_align.pipeline.export_format import render

    text = render(folder_rows(run_dirs, labels), fmt, digits, intervals)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text


def write_report(run_dir: str | Path) -> Path:
    """(Re)write ``RUN_DIR/report.html`` and return its path (``mm-align report``)."""
    from mm_align.report import write_report as render

    return render(run_dir)


# ---- The companion paper's tools (GEOMETRY.md) ---------------------------------------------


def _geometry_config(cls: type[RunConfig], config: Any, fields: dict[str, Any]) -> Any:
    return config.replace(**fields) if config else cls.from_options(**fields)


def scaling(
    models: Sequence[str | Path], data: str | Path, out: str | Path | None = None, *,
    config: Any = None, **options: Any,
) -> dict[str, Any]:
    """Entropy of a series of text LLMs against their size; ``mm-align scaling``.

    ``models``: checkpoint folders or hub ids (at least 2); ``options``: any
    :class:`~mm_align.config.ScalingConfig` field (``offset``, ``max_length``, ``n_boot``,
    ``resume``, ...). Returns the ``scaling.json`` document (see
    :func:`mm_align.pipeline.scaling.run_scaling`); with ``out`` also writes
    ``OUT/members/NAME/``, ``OUT/scaling.json`` and ``OUT/report.html``.
    """
    from mm_align.config import ScalingConfig
    from mm_align.pipeline.scaling import run_scaling

    fields = {"models": tuple(str(m) for m in models), "data": str(data),
              "out": None if out is None else str(out), **options}
    doc = run_scaling(_geometry_config(ScalingConfig, config, fields))
    _report_quietly(out)
    return doc


def info_gain(
    model: Any, data: str | Path, out: str | Path | None = None, *, config: Any = None,
    **options: Any,
) -> ScoreResult:
    """Per-token information gain along each text; ``mm-align info-gain``.

    ``model``: a checkpoint folder or hub id, or a :class:`~mm_align.adapters.text.TextAdapter`;
    ``options``: any :class:`~mm_align.config.InfoGainConfig` field (``layer``, ``lam``,
    ``form``, ...). See :func:`mm_align.pipeline.info_gain_run.run_info_gain`.
    """
    from mm_align.config import InfoGainConfig
    from mm_align.pipeline.info_gain_run import run_info_gain

    fields = {"model": _name(model) or model.model.name_or_path, "data": str(data),
              "out": None if out is None else str(out), **options}
    result = run_info_gain(_geometry_config(InfoGainConfig, config, fields),
                           model=None if _name(model) else model)
    _report_quietly(out)
    return result


def attribution(
    model: str | Path, data: str | Path, out: str | Path | None = None, *, config: Any = None,
    **options: Any,
) -> ScoreResult:
    """Lasso vs attention attribution of each text's last token, with keep-only / delete-k
    interventions; ``mm-align attribution``. ``model``: a causal-LM checkpoint folder or hub
    id; ``options``: any :class:`~mm_align.config.AttributionConfig` field (``layer``, ``k``,
    ``alpha_ratio``, ``intervention``, ...). See
    :func:`mm_align.pipeline.attribution_run.run_attribution`.
    """
    from mm_align.config import AttributionConfig
    from mm_align.pipeline.attribution_run import run_attribution

    fields = {"model": str(model), "data": str(data), "out": None if out is None else str(out),
              **options}
    result = run_attribution(_geometry_config(AttributionConfig, config, fields))
    _report_quietly(out)
    return result


def sweep(
    models: str | Path | Sequence[str | Path], data: str | Path, out: str | Path, *,
    projectors: Sequence[str | Path] = (), config: Any = None, **options: Any,
) -> dict[str, Any]:
    """Score a series of VLMs on one data set; ``mm-align sweep``.

    ``models``: checkpoint folders, globs (``"runs/ckpt-*"``) or hub ids (``"org/name@rev"``);
    with ``projectors`` (files), one base model that each projector is swapped into.
    ``options``: any :class:`~mm_align.config.SweepConfig` field (every ``score`` option,
    ``reuse_vision``, ``feature_cache``, ``name``...). Writes ``OUT/members/NAME/`` (one
    ``score`` run each), ``OUT/sweep.json`` and ``OUT/report.html``; returns the
    ``sweep.json`` document (see :mod:`mm_align.pipeline.sweep`).
    """
    from mm_align.config import SweepConfig
    from mm_align.pipeline.sweep import run_sweep

    listed = [models] if isinstance(models, str | Path) else list(models)
    fields = {"models": tuple(str(m) for m in listed), "projectors": tuple(str(p) for p in projectors),
              "data": str(data), "out": str(out), **options}
    doc = run_sweep(_geometry_config(SweepConfig, config, fields))
    for member in doc["members"]:  # each member's own report, as `score` writes it
        _report_quietly(Path(out) / member["run"])
    _report_quietly(out)
    return doc


def _document_options() -> None:
    """Append each API function's options, with their documentation, to its docstring
    (``help(mm_align.score)`` lists them), from the config classes' own field docs."""
    from mm_align.config import AttributionConfig, InfoGainConfig, ScalingConfig, SweepConfig
    from mm_align.options import options_doc

    given = ("model", "models", "data", "out", "projectors")
    for func, config in ((score, ScoreConfig), (diff_erank, DiffErankConfig), (sweep, SweepConfig),
                         (scaling, ScalingConfig), (info_gain, InfoGainConfig),
                         (attribution, AttributionConfig)):
        func.__doc__ = f"{(func.__doc__ or '').rstrip()}\n\n{textwrap.indent(options_doc(config, skip=given), '    ')}\n"


_document_options()
