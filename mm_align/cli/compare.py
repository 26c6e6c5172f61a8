"""``mm-align compare RUN_DIR... --out DIR``: metrics of several runs side by side, with
bootstrap intervals of each run's difference to the first (the baseline); prints what differs
between the runs, the differences and the runs' table, then the page's path."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare runs against the first one",
        description="Write OUT/compare.json and OUT/compare.html. Runs on the same data (equal "
        "data fingerprints) get paired bootstrap intervals and p-values of each metric's "
        "difference to the first run, matched by sample id.",
    )
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories; the first is the baseline"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--allow-different-data",
        action="store_true",
        help="compare runs whose data fingerprints differ or are missing (paired on shared "
        "sample ids if any, else unpaired)",
    )
    parser.add_argument(
        "--labels", metavar="A,B,...", help="comma-separated display names, one per run"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.api import write_comparison
    from mm_align.pipeline.comparison import compare, format_comparison
    from mm_align.pipeline.export import export_rows
    from mm_align.pipeline.export_format import to_markdown

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    doc, runs = compare(args.run_dirs, allow_different_data=args.allow_different_data, labels=labels)
    page = write_comparison(doc, runs, args.out)
    print(format_comparison(doc))
    print("\n" + to_markdown(export_rows(runs)))
    print(f"\n{page}")
    return 0
