"""``sweep``: one data set scored by a series of VLMs, member by member, with a trend.

A member is a checkpoint (a folder, a match of a glob such as ``ckpt-*``, or a hub id with
an optional ``@revision``) or, in a projector sweep, one projector file swapped into a base
model that is loaded once. Each member is an ordinary ``score`` run in ``OUT/members/NAME``
(:func:`~mm_align.pipeline.score.run_score`: same numbers, same files), so a finished member
is skipped by ``--resume``, a partial one continued, and any member can be opened, reported,
compared or exported on its own.

The vision tower's work is shared (:mod:`~mm_align.adapters.vision_cache`): what the
connector takes is cached per batch under the vision tower's identity and replayed for every
later member with the same tower (every projector of a projector sweep; checkpoints that
froze their vision tower). Replay is checked against a real pass per vision tower before it
is trusted, and a model that does not replay exactly is scored the ordinary way.

``OUT/sweep.json`` (:func:`summarize_sweep`) holds every member's dataset metrics with their
95 % intervals, each member's paired difference from the first
(:func:`~mm_align.pipeline.comparison.compare`), and the vision passes computed and reused.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mm_align.adapters.vision_cache import (
    FeatureStore,
    ReuseStats,
    reusing_vision,
    vision_identity,
)
from mm_align.config import ScoreConfig, SweepConfig
from mm_align.pipeline.comparison import compare
from mm_align.pipeline.distributed import Workers
from mm_align.pipeline.provenance import software_versions
from mm_align.pipeline.score import load_adapter, run_score
from mm_align.pipeline.scorer import ScoreError
from mm_align.rundir import MEMBERS, check, claim, is_finished, member_dir, owned, write_series
from mm_align.stages import STAGES

__all__ = ["Member", "extra_scalars", "members_of", "run_sweep", "step_of", "summarize_sweep"]

log = logging.getLogger(__name__)

_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Member:
    """One model of a sweep: a checkpoint (with its hub revision) and, in a projector
    sweep, the projector file swapped into it."""

    name: str
    model: str
    revision: str | None = None
    projector: str | None = None
    step: int | None = None  # training step (--steps, or read from the name by --step-from)


def step_of(name: str, rule: str) -> int | None:
    """The training step in a member's ``name`` by the regular expression ``rule``: its first
    group (else the whole match) of the last match, or ``None``.

    >>> step_of("checkpoint-1200", DEFAULT_STEP_FROM), step_of("tiny-llava-s1", DEFAULT_STEP_FROM)
    (1200, None)
    """
    matches = list(re.finditer(rule, name, flags=re.IGNORECASE))
    if not matches:
        return None
    text = matches[-1].group(1) if matches[-1].re.groups else matches[-1].group(0)
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError(f"--step-from {rule!r} matched {text!r} in {name!r}, not a number") from None


def _natural(text: str) -> list[Any]:
    """Sort key that orders ``ckpt-2`` before ``ckpt-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "member"


def _checkpoints(pattern: str) -> list[tuple[str, str | None]]:
    """``(model, revision)`` of one ``--model``: a folder, a glob's folders in natural
    order, or a hub id with an optional ``@revision``."""
    if Path(pattern).exists():
        return [(pattern, None)]
    if _GLOB.search(pattern):
        found = sorted((p for p in glob.glob(pattern) if Path(p).is_dir()), key=_natural)
        if not found:
            raise ValueError(f"--model {pattern!r} matches no checkpoint folder")
        return [(p, None) for p in found]
    model, _, revision = pattern.partition("@")
    return [(model, revision or None)]


def members_of(config: SweepConfig) -> list[Member]:
    """The sweep's members in order: projectors in the order given, checkpoints in the order
    given (a glob's matches in natural order).

    Raises:
        ValueError: a glob matches nothing, a projector file is missing, or two members
            would share a folder name.
    """
    if config.projectors:
        (model,) = config.models
        for path in config.projectors:
            if not Path(path).is_file():
                raise ValueError(f"projector file not found: {path}")
        members = [Member(_safe(Path(p).stem), model, config.revision, p) for p in config.projectors]
    else:
        pairs = [pair for pattern in config.models for pair in _checkpoints(pattern)]
        members = [Member(_safe(Path(m.rstrip("/")).name + (f"@{r}" if r else "")), m, r or config.revision)
                   for m, r in pairs]
    names = [m.name for m in members]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two members would share the folder name {', '.join(twice)}; rename the files "
                         "or folders, or run separate sweeps")
    if config.steps and len(config.steps) != len(members):
        raise ValueError(f"--steps gives {len(config.steps)} steps for {len(members)} members "
                         f"({', '.join(names)})")
    steps = config.steps or [None if config.projectors else step_of(n, config.step_from) for n in names]
    return [dataclasses.replace(m, step=s) for m, s in zip(members, steps, strict=True)]


def member_config(config: SweepConfig, member: Member) -> ScoreConfig:
    """The member's ``score`` settings: the sweep's, with its model, revision, projector and
    run directory."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(ScoreConfig)}
    return ScoreConfig(**{**shared, "model": member.model, "revision": member.revision,
                          "projector": member.projector,
                          "out": str(member_dir(config.out, member.name))})  # type: ignore[arg-type]


@contextmanager
def _vision(adapter: Any, store: FeatureStore | None, identity: str | None) -> Iterator[ReuseStats | None]:
    """Reuse of the vision tower for one member, when the feature store is on (image models:
    an audio model's encoder always runs)."""
    if store is None or getattr(adapter, "modality", "image") != "image":
        yield None
        return
    with reusing_vision(adapter, store, identity) as stats:
        yield stats
    if stats.problem:
        log.warning("vision features are not reused for %s: %s", adapter.model.name_or_path, stats.problem)


Base = tuple[Any, str | None]
"""A projector sweep's loaded base model and its vision identity (None: not computed)."""


def _score_member(config: SweepConfig, member_cfg: ScoreConfig, base: Base | None,
                  store: FeatureStore | None) -> tuple[Base | None, dict[str, Any]]:
    """Score one member; returns the base model to keep (projector sweeps) and its vision
    counts."""
    adapter, identity = base or (load_adapter(member_cfg.replace(projector=None)), None)
    if store is not None and identity is None:  # the projector is not in it: once per base
        identity = vision_identity(adapter)
    with _vision(adapter, store, identity) as stats:
        run_score(member_cfg, model=adapter)
    # projectors share one loaded base model; a checkpoint's weights go before the next loads
    kept = (adapter, identity) if config.projectors else None
    return kept, (stats.as_dict() if stats else {"computed": None, "reused": None})


def _drop_unshared(store: FeatureStore, vision: dict[str, dict[str, Any]], keep: str | None) -> None:
    """Delete the cached features of every vision tower that no member replayed, except
    ``keep`` (the one in use): checkpoints that trained their tower would otherwise leave a
    copy of every tower's output on disk, of no use to anyone."""
    reused: dict[str, int] = {}
    for stats in vision.values():
        if stats.get("identity"):
            reused[stats["identity"]] = reused.get(stats["identity"], 0) + stats["reused"]
    for identity, count in reused.items():
        if count == 0 and identity != keep:
            store.drop(identity)


def run_sweep(config: SweepConfig) -> dict[str, Any]:
    """Score every member (see the module doc); returns and writes ``OUT/sweep.json``.

    A member that fails (a checkpoint that does not load, a projector file that does not fit,
    no sample scored) is recorded with its reason and the sweep goes on, unless ``strict``.

    Raises:
        ValueError: no ``out``, a bad member list, a data-parallel launch.
        RunDirError: ``out`` is in use, not a sweep folder, or holds one and ``resume`` is off.
        ScoreError: no member could be scored.
    """
    if config.out is None:
        raise ValueError("a sweep writes one run per member: give out (--out)")
    if Workers.from_env().world_size > 1:
        raise ValueError("mm-align sweep runs in one process; launch data-parallel `score` runs per member instead")
    members = members_of(config)
    root = Path(config.out)
    with owned(root, config.overwrite):  # each member's run is owned too, by its own score run
        check(root, "sweep", {}, config.resume, config.overwrite)
        claim(root, {"command": "sweep", "config": config.to_dict(), "identity": {}})
        failed, vision = _score_members(config, members, root)
        done = [m for m in members if is_finished(member_dir(root, m.name))]
        if not done:
            raise ScoreError(f"no member of the sweep could be scored: {failed}")
        doc = summarize_sweep(config, done, vision, failed)
        write_series(root, "sweep", doc)
    return doc


def _score_members(config: SweepConfig, members: list[Member],
                   root: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Score every member not finished yet: member -> reason of those that failed, and
    member -> its vision-reuse statistics."""
    store = FeatureStore(config.feature_cache or root / "features") if config.reuse_vision else None
    vision: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    base: Base | None = None
    for number, member in enumerate(members, 1):
        member_cfg = member_config(config, member)
        if config.resume and is_finished(member_cfg.out):  # type: ignore[arg-type]
            log.info("member %s (%d of %d): finished, skipped", member.name, number, len(members))
            continue
        log.info("member %s (%d of %d)", member.name, number, len(members))
        try:
            base, vision[member.name] = _score_member(config, member_cfg, base, store)
        except (ValueError, OSError, RuntimeError) as err:
            if config.strict:
                raise
            failed[member.name] = f"{type(err).__name__}: {err}"
            log.error("member %s failed, the sweep goes on: %s", member.name, failed[member.name])
        if store is not None and config.feature_cache is None:  # keep the latest member's tower
            latest = [stats["identity"] for stats in vision.values() if stats.get("identity")]
            _drop_unshared(store, vision, keep=latest[-1] if latest else None)
    if store is not None and config.feature_cache is None:
        _drop_unshared(store, vision, keep=None)
    return failed, vision


def extra_scalars(extra: dict[str, Any]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The ``--metrics`` of a run's summary as flat values and intervals: ``rankme_STAGE``
    (mean and interval over samples), ``cka``, ``cknna``, ``knn``, ``mir`` (values only)."""
    values: dict[str, float] = {}
    intervals: dict[str, list[float]] = {}
    rankme = extra.get("rankme", {})
    for stage in (s for s in STAGES if s in rankme.get("mean", {})):
        values[f"rankme_{stage}"] = rankme["mean"][stage]
        intervals[f"rankme_{stage}"] = list(rankme["ci95"][stage])
    for name in ("cka", "cknna", "knn", "mir"):
        if isinstance(extra.get(name), dict) and "value" in extra[name]:
            values[name] = extra[name]["value"]
    return values, intervals


def _member_entry(member: Member, run: Any, vision: dict[str, Any] | None) -> dict[str, Any]:
    values, intervals = extra_scalars(run.extra_metrics())
    return {"name": member.name, "model": member.model, "revision": member.revision,
            "projector": member.projector, "step": member.step,
            "run": f"{MEMBERS}/{member.name}", "n_samples": run.n_samples, "n_errors": run.n_errors,
            "metrics": {**run.metrics(), **values},
            "ci95": {**{k: list(v) for k, v in run.ci().items()}, **intervals},
            "layer_alignment": {str(k): v for k, v in run.layer_alignment().items()},
            "vision": vision}


def summarize_sweep(config: SweepConfig, members: list[Member], vision: dict[str, dict[str, Any]],
                    failed: dict[str, str] | None = None) -> dict[str, Any]:
    """``sweep.json``: the finished members' metrics and intervals (read from their runs),
    each member's paired difference from the first, the vision passes (``vision``: member ->
    :meth:`ReuseStats.as_dict` of this invocation; members skipped by ``--resume`` have
    none) and the members that failed, with their reasons."""
    dirs = [member_dir(config.out, m.name) for m in members]  # type: ignore[arg-type]
    comparison, runs = compare(dirs, labels=[m.name for m in members])
    steps = [m.step for m in members]
    # members are placed by training step when every one has a distinct one
    by_step = None not in steps and len(set(steps)) == len(steps)
    return {
        "name": config.model, "kind": "projectors" if config.projectors else "checkpoints",
        "data": config.data, "x": "step" if by_step else "order",
        "members": [_member_entry(m, runs[m.name], vision.get(m.name)) for m in members],
        "failed": dict(failed or {}),
        "comparison": comparison,
        "vision_reuse": {"enabled": config.reuse_vision,
                         "computed": sum(v.get("computed") or 0 for v in vision.values()),
                         "reused": sum(v.get("reused") or 0 for v in vision.values())},
        "config": config.to_dict(), "versions": software_versions(),
    }
