"""``mm-align export RUN_DIR... --format csv|markdown|json|latex``: one row per run, for a
paper table or a data frame."""

from __future__ import annotations

import argparse

from mm_align.pipeline.export_format import DIGITS, FORMATS, INTERVALS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="runs as a table: one row per run (csv, markdown, json or latex)",
        description="One row per run: model, revision, dtype, data and its fingerprint, samples "
        "scored, the five eRanks and both ratios with 95% bootstrap intervals (score "
        "runs; per-layer values too when layers were swept), each control's paired difference "
        "from the real run with interval and p-value, or the Diff-eRank with intervals "
        "(diff-erank runs). A sweep's folder gives its members with their step; a compare "
        "folder gives one row per compared run (paired differences, intervals, p). CSV and "
        "JSON hold every column (pandas.read_csv / read_json); Markdown and LaTeX (booktabs) "
        "show the values with their intervals and, of the differences, the two ratios.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run, sweep or compare directories")
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt",
                        help="table format (default: %(default)s)")
    parser.add_argument("--out", metavar="FILE", help="write the table here instead of to stdout")
    parser.add_argument("--labels", metavar="A,B,...",
                        help="comma-separated row names, one per run (default: directory names)")
    parser.add_argument("--digits", type=int, default=DIGITS, metavar="N",
                        help="significant figures of every eRank and ratio in markdown and latex "
                        "(default: %(default)s)")
    parser.add_argument("--intervals", choices=INTERVALS, default=None,
                        help="intervals as value ± half-width (pm; +up/−down when asymmetric) or "
                        "value [lo, hi] (brackets) in markdown and latex (default: brackets in "
                        "markdown, pm in latex)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.api import export

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    text = export(args.run_dirs, args.fmt, args.out, labels=labels, digits=args.digits,
                  intervals=args.intervals)
    print(args.out if args.out else text, end="\n" if args.out else "")
    return 0
