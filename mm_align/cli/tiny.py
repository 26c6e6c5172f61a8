"""``mm-align tiny``: build a tiny random-weight checkpoint of a model family, for smoke tests."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tiny",
        help="build a tiny RANDOM-WEIGHT checkpoint of a model family (smoke tests only)",
        description=(
            "Save a tiny checkpoint of a model family (real architecture, randomly initialised "
            "weights, a working processor with a toy tokenizer) to DIR, loadable offline with "
            "from_pretrained(DIR) and mm_align.load_vlm(DIR). Its numbers mean nothing."
        ),
    )
    p.add_argument("family", metavar="FAMILY",
                   help="config model_type of the family (`mm-align families` lists them)")
    p.add_argument("directory", metavar="DIR", help="folder to write the checkpoint to")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.adapters import adapter_class
    from mm_align.adapters.tiny import TINY_NOTE

    path = adapter_class(args.family).build_tiny(args.directory, seed=args.seed)
    banner = "!" * 72
    print(banner)
    print(f"!! {TINY_NOTE}")
    print(f"!! tiny {args.family} checkpoint (seed {args.seed}) written to {path}")
    print("!! Its weights are random: use it to test code paths, never to measure a model.")
    print(banner)
    return 0
