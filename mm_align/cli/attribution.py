"""``mm-align attribution``: Lasso vs attention attribution of the last token."""

from __future__ import annotations

import argparse

from mm_align.cli.console import add_fail_option, config_of, finish
from mm_align.config import AttributionConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "attribution",
        help="which earlier tokens carry the last one: Lasso vs attention vs random, by "
             "keep-only / delete-k interventions",
        description=(
            "For the last token of each text at --layer: Lasso weights over the earlier "
            "tokens' states and the head-averaged attention of the block producing that "
            "layer; their top-k and random k-subsets are kept alone or deleted and the "
            "next-token distribution compared with the full context (KL, top-1 agreement), "
            "for every --k. Needs a causal LM (AutoModelForCausalLM, eager attention). "
            "Writes results.jsonl, summary.json (curves over k) and report.html to --out."
        ),
    )
    add_arguments(p, AttributionConfig)
    add_fail_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(AttributionConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import attribution

    s = attribution(config.model, config.data, config.out, config=config).summary
    lines = [f"texts scored: {s['n_samples']}   errors: {s['n_errors']}"]
    for mode, by_selector in s["curves"]["kl"].items():
        for selector, curve in by_selector.items():
            values = "  ".join(f"k={k}: {v:.4f}" for k, v in curve.items())
            lines.append(f"  KL {mode:<9} {selector:<9} {values}")
    return finish(args, s, config.out, "\n".join(lines))
