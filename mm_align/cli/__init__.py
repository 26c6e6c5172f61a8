"""The ``mm-align`` command line: one module per sub-command, each a thin shell around the
Python API (:mod:`mm_align.api`). A sub-command module exposes ``register(subparsers)``, which
adds its parser and sets ``func`` (``args -> exit code``). Building the parser imports
neither torch nor transformers, so ``--help`` answers at once; a command imports what it
needs when it runs."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

import mm_align
from mm_align.cli.args import Parser, add_config_option, parse
from mm_align.cli.console import one_line_warnings

# Order here is the order in `mm-align --help`.
_COMMANDS = ("score", "diff_erank", "tiny", "families", "report", "compare", "export", "scaling",
             "info_gain", "attribution", "sweep")


def build_parser() -> Parser:
    parser = Parser(
        prog="mm-align",
        description=(
            "Measure image-text alignment of vision-language models with the rank-based "
            "method of Diff-eRank (NeurIPS 2024)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mm-align {mm_align.__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="more messages (-vv: debug); errors show their traceback")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for name in _COMMANDS:
        importlib.import_module(f"mm_align.cli.{name}").register(subparsers)
    for sub in subparsers.choices.values():
        add_config_option(sub)
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _configure_logging(verbose: int, quiet: bool) -> None:
    """mm-align's own messages (resume, skips) at INFO by default; libraries stay at WARNING."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mm-align: %(message)s"))
    root = logging.getLogger("mm_align")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    one_line_warnings()  # a warning is one line, without the source line that raised it


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, _commands(parser), sys.argv[1:] if argv is None else argv)
    except ValueError as err:  # an unreadable --config
        print(f"mm-align: error: {err}", file=sys.stderr)
        return 2
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
    from mm_align.cli.stops import run_command  # Ctrl-C, SIGTERM, a failed report: one line

    try:
        return run_command(args.func, args)
    except (ValueError, OSError, RuntimeError) as err:
        # Bad input, bad paths and failed runs are the user's to fix: say what is wrong in
        # one line; -v shows the traceback for bug reports.
        if args.verbose:
            raise
        print(f"mm-align: error: {err}", file=sys.stderr)
        return 1
