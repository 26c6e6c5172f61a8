"""``mm-align sweep``: a series of checkpoints, or of projectors on one base model."""

from __future__ import annotations

import argparse
import sys

from mm_align.cli.console import EXIT_SAMPLES_FAILED, add_fail_option, config_of, failures_line
from mm_align.config import SweepConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="score a series of checkpoints or projector files on one data set, with a trend report",
        description=(
            "Scores every member on the same data, each into OUT/members/NAME as `score` would "
            "(resumable member by member): the checkpoints given by --model (folders, globs such "
            "as 'runs/ckpt-*' in natural order, hub ids as org/name@revision), or one base --model "
            "with each --projector file swapped in. The vision tower runs once per batch: what the "
            "connector takes is cached in OUT/features (safetensors, keyed by pixels and vision "
            "tower) and replayed for every other member with the same tower, after a check that "
            "replay reproduces the real numbers. A member that fails is recorded and the sweep goes "
            "on (--strict stops it). Writes OUT/sweep.json (every metric with its 95% "
            "interval per member, and each member's paired difference from the first) and "
            "OUT/report.html (the trend)."
        ),
    )
    p.add_argument("--model", dest="models", action="append", required=True, metavar="MODEL",
                   help="a checkpoint, a glob of checkpoint folders or org/name@revision; repeat "
                        "for each (a projector sweep: the one base model)")
    p.add_argument("--projector", dest="projectors", action="append", default=[], metavar="FILE",
                   help="a projector file (.safetensors or LLaVA mm_projector.bin); repeat for each")
    add_arguments(p, SweepConfig)
    add_fail_option(p)
    p.set_defaults(func=run)


def vision_note(vision: dict | None) -> str:
    """What the vision tower did for one member, in words: its passes replayed from the
    feature cache (the tower is shared with an earlier member) or run for real."""
    if not vision or vision.get("computed") is None:
        return ""  # reuse off, or a member finished by an earlier invocation
    reused, total = vision["reused"], vision["reused"] + vision["computed"]
    if vision.get("problem"):
        return f"   vision tower run: {total} passes (cache not used: {vision['problem']})"
    if reused == 0:
        return f"   vision tower run: {total} passes (first member with this tower; cached)"
    return f"   vision tower replayed from cache: {reused} of {total} passes"


def run(args: argparse.Namespace) -> int:
    config = config_of(SweepConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import sweep

    doc = sweep(config.models, config.data, str(config.out), projectors=config.projectors, config=config)
    if not args.quiet:
        _print_members(doc)
        print(f"\nresults in {config.out}")
    n_errors = sum(m["n_errors"] for m in doc["members"])
    total = n_errors + sum(m["n_samples"] for m in doc["members"])
    if n_errors:
        print(f"mm-align: {failures_line(n_errors, total, None)} over the members, see "
              f"{config.out}/members/NAME/errors.jsonl", file=sys.stderr)
    return EXIT_SAMPLES_FAILED if n_errors and args.fail_on_errors else 0


def _print_members(doc: dict) -> None:
    """One line per member, then the failed members and the paired differences."""
    from mm_align.pipeline.comparison import format_comparison

    by_step = doc["x"] == "step"
    for m in doc["members"]:
        metrics = m["metrics"]
        step = f"step {m['step']:<8} " if by_step else ""
        print(f"  {m['name']:<28} {step}eRank image {metrics.get('erank_image', float('nan')):8.3f}   "
              f"reduction {metrics.get('image_reduction_ratio', float('nan')):.4f}   alignment "
              f"{metrics.get('image_text_alignment', float('nan')):.4f}{vision_note(m['vision'])}")
    if not by_step and doc["kind"] == "checkpoints":
        print("  (members in the order given: not every name gives a distinct training step by "
              "--step-from; --steps sets them)")
    for name, reason in doc["failed"].items():
        print(f"  {name:<28} FAILED: {reason}")
    if doc["comparison"]["differences"]:
        print("\n" + format_comparison(doc["comparison"], provenance=False))
