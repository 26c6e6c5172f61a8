"""``mm-align diff-erank``: the paper's Diff-eRank of a text LLM (trained vs random init)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "diff-erank",
        help="Diff-eRank of a text LLM: eRank of its random init minus eRank of the model",
        description=(
            "Diff-eRank of a text LLM (the paper's single-modal metric): per text, the matrix "
            "entropy and eRank of the last hidden state of the trained model and of the same "
            "architecture randomly initialised under --seed; Diff-eRank by Algorithm (a) "
            "(exp of mean entropy, the paper's) and (b) (mean of per-text eRanks), with 95%% "
            "bootstrap intervals, written to --out."
        ),
    )
    p.add_argument(
        "--model", required=True, help="checkpoint folder or hub id of the trained model"
    )
    p.add_argument(
        "--data",
        required=True,
        help="texts: .txt (one per line), .jsonl/.csv with a text column (or "
        "instruction + response), saved HF dataset folder or hub dataset",
    )
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument(
        "--max-length",
        type=int,
        default=2048,
        help="truncate texts to this many tokens (default 2048, the paper's)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default 8)")
    p.add_argument("--limit", type=int, help="score only the first N texts")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="model precision (metrics are always computed in float64)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the untrained model's init and of the bootstrap (default 0)",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first bad text")
    p.add_argument("--text-column", help="text column of JSONL/CSV/HF data (default: text)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.pipeline.diff_erank import diff_erank, format_diff_erank

    summary = diff_erank(
        args.model,
        args.data,
        args.out,
        max_length=args.max_length,
        batch_size=args.batch_size,
        limit=args.limit,
        resume=args.resume,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        strict=args.strict,
        progress=not args.no_progress,
        text_column=args.text_column,
    )
    print(format_diff_erank(summary))
    print(f"\nresults in {args.out}")
    return 0
