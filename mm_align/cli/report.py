"""``mm-align report RUN_DIR``: rebuild ``RUN_DIR/report.html`` from the run's files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="rebuild the HTML report of a run directory",
        description="Write RUN_DIR/report.html, a self-contained page (figures embedded) "
        "with the run's metrics, intervals, distributions, samples, controls and errors.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory with summary.json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.api import write_report

    print(write_report(args.run_dir))
    return 0
