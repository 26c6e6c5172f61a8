"""``mm-align diff-erank``: the paper's Diff-eRank of a text LLM (trained vs random init)."""

from __future__ import annotations

import argparse

from mm_align.cli.console import add_fail_option, config_of, finish
from mm_align.config import DiffErankConfig, add_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diff-erank",
        help="Diff-eRank of a text LLM: eRank of its random init minus eRank of the model",
        description=(
            "Diff-eRank of a text LLM (the paper's single-modal metric): per text, the matrix "
            "entropy and eRank of the last hidden state of the trained model and of the same "
            "architecture randomly initialised under --seed; Diff-eRank by Algorithm (a) "
            "(exp of mean entropy, the paper's) and (b) (mean of per-text eRanks), with 95% "
            "bootstrap intervals, written to --out. --data: .txt (one text per line), "
            ".jsonl/.csv with a text column (or instruction + response), a saved HF dataset "
            "folder or a hub dataset."
        ),
    )
    add_arguments(p, DiffErankConfig)
    add_fail_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(DiffErankConfig, args)  # every option and --model checked before heavy imports
    from mm_align.api import diff_erank
    from mm_align.pipeline.diff_erank import format_diff_erank

    result = diff_erank(config.model, config.data, config.out, config=config)
    return finish(args, result.summary, config.out, format_diff_erank(result.summary))
