"""``mm-align scaling``: representation entropy of a model series against model size."""

from __future__ import annotations

import argparse

from mm_align.cli.console import config_of
from mm_align.config import ScalingConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scaling",
        help="entropy and eRank of a series of text LLMs against their size (power-law fit)",
        description=(
            "Scores every --model on the same texts (last hidden state, as diff-erank does), "
            "each into OUT/members/NAME (resumable model by model), counts their parameters "
            "from the checkpoints, and fits E = a * P^b (+ c with --offset) in log-log space "
            "for the mean entropy, the mean normalised entropy H/ln d and the dataset eRank, "
            "with paired bootstrap intervals over texts. Writes OUT/scaling.json and "
            "OUT/report.html."
        ),
    )
    p.add_argument("--model", dest="models", action="append", required=True, metavar="MODEL",
                   help="a checkpoint folder or hub id of the series; repeat for each model")
    add_arguments(p, ScalingConfig)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(ScalingConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import scaling

    doc = scaling(config.models, config.data, config.out, config=config)
    for m in doc["models"]:
        print(f"  {m['name']:<24} {m['parameters']:>14,d} params   entropy {m['entropy']:.4f}"
              f"   eRank {m['erank']:.2f}")
    for name, fit in doc["fits"].items():
        lo, hi = fit["ci95"]["b"]
        print(f"  {name:<20} b = {fit['b']:+.4f} [{lo:+.4f}, {hi:+.4f}]   R^2 = {fit['r2']:.4f}")
    print(f"\nresults in {config.out}")
    return 0
