"""The ``mm-align`` command line: one module per sub-command, each a thin shell around the
Python API. A sub-command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` (``args -> exit code``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import mm_align

# Order here is the order in `mm-align --help`.
_COMMANDS = ("score", "diff_erank", "tiny", "families", "report", "compare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mm-align",
        description=(
            "Measure image-text alignment of vision-language models with the rank-based "
            "method of Diff-eRank (NeurIPS 2024)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mm-align {mm_align.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"mm_align.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as err:
        # Bad input, bad paths and failed runs are the user's to fix: say what is wrong in
        # one line. MM_ALIGN_TRACEBACK=1 shows the traceback for bug reports.
        if os.environ.get("MM_ALIGN_TRACEBACK"):
            raise
        print(f"mm-align: error: {err}", file=sys.stderr)
        return 1
