"""``mm-align info-gain``: the information gain of each token along a text."""

from __future__ import annotations

import argparse

from mm_align.cli.console import add_fail_option, config_of, finish
from mm_align.config import InfoGainConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info-gain",
        help="per-token information gain (log-det entropy, ridge) along each text",
        description=(
            "For each text, the hidden states at --layer give the information gain of every "
            "token over the earlier ones: 1/2 ln(lam + rho), rho the optimal ridge objective "
            "of regressing the token on the earlier tokens (the curve sums to the text's "
            "log-det entropy 1/2 ln det(lam I + Z Z^T)). Writes results.jsonl (curve per "
            "text), summary.json (mean curve by position) and report.html to --out."
        ),
    )
    add_arguments(p, InfoGainConfig)
    add_fail_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(InfoGainConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import info_gain

    s = info_gain(config.model, config.data, config.out, config=config).summary
    table = (f"texts scored: {s['n_samples']}   errors: {s['n_errors']}\n"
             f"mean log-det entropy {s['entropy_mean']:.4f} nats, mean gain per token "
             f"{s['gain_mean']:.4f} nats")
    return finish(args, s, config.out, table)
