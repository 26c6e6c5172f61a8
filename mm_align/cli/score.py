"""``mm-align score``: a VLM over an image-caption set."""

from __future__ import annotations

import argparse

from mm_align.cli.console import add_fail_option, config_of, finish
from mm_align.config import CONTROLS, PERTURBATIONS, ScoreConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a VLM on an image-caption set (the paper's five eRanks and two ratios)",
        description=(
            "Score a vision-language model on an image-caption set: per-sample eRanks of the "
            "vision encoder, projector and LLM (image / text / image+text), the Image "
            "Reduction Ratio and Image-Text Alignment, a dataset summary with 95% bootstrap "
            "intervals and an HTML report, written to --out. An audio-language model (see "
            "`mm-align families`) is scored the same way on audio-transcript pairs (an audio "
            "column), its audio encoder in the vision encoder's place."
        ),
    )
    add_arguments(p, ScoreConfig)
    analyses = next(g for g in p._action_groups if g.title == "analyses options")
    analyses.add_argument("--control", action="append", default=[], choices=CONTROLS,
                          help="also run a control into OUT/controls/NAME (repeatable)")
    analyses.add_argument("--perturb", action="append", default=[], choices=PERTURBATIONS,
                          help="also run an image perturbation into OUT/controls/NAME (repeatable)")
    add_fail_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(ScoreConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import score
    from mm_align.pipeline.distributed import Workers
    from mm_align.pipeline.summary import format_table

    result = score(config.model, config.data, config.out, config=config)
    if not Workers.from_env().is_main:  # one table, not one per data-parallel process
        return 0
    return finish(args, result.summary, config.out, format_table(result.summary))
