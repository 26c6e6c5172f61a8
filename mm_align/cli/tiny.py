"""``mm-align tiny``: build a tiny random-weight checkpoint of a model family, for smoke tests."""

from __future__ import annotations

import argparse

from mm_align.constants import TEXT_FAMILIES, TINY_TEXT_SEED


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tiny",
        help="build a tiny RANDOM-WEIGHT checkpoint of a model family (smoke tests only)",
        description=(
            "Save a tiny checkpoint of a model family (real architecture, randomly initialised "
            "weights, a working processor with a toy tokenizer) to DIR, loadable offline with "
            "from_pretrained(DIR) and mm_align.load_vlm(DIR). Its numbers mean nothing. "
            f"{' and '.join(TEXT_FAMILIES)} build a tiny text LLM for `mm-align diff-erank` "
            "(its token embeddings collapsed to a low rank, so its Diff-eRank is positive)."
        ),
    )
    p.add_argument("family", metavar="FAMILY",
                   help="config model_type of a VLM family (`mm-align families` lists them), or a "
                        f"text LLM for diff-erank: {' or '.join(TEXT_FAMILIES)}")
    p.add_argument("directory", metavar="DIR", help="folder to write the checkpoint to")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the random weights (default: 0; {TINY_TEXT_SEED} for {' and '.join(TEXT_FAMILIES)}, "
                        "away from diff-erank's untrained seed 0)")
    p.set_defaults(func=run)


def _build(family: str, directory: str, seed: int | None) -> tuple:
    """(folder, seed) of a new tiny checkpoint: a text LLM or a VLM family."""
    if family in TEXT_FAMILIES:
        from mm_align.adapters.tiny.text import build_tiny_text_model

        seed = TINY_TEXT_SEED if seed is None else seed
        return build_tiny_text_model(directory, family, seed=seed), seed
    from mm_align.adapters import adapter_class

    seed = 0 if seed is None else seed
    return adapter_class(family).build_tiny(directory, seed=seed), seed


def run(args: argparse.Namespace) -> int:
    from mm_align.adapters.tiny import TINY_NOTE

    path, seed = _build(args.family, args.directory, args.seed)
    banner = "!" * 72
    print(banner)
    print(f"!! {TINY_NOTE}")
    print(f"!! tiny {args.family} checkpoint (seed {seed}) written to {path}")
    print("!! Its weights are random: use it to test code paths, never to measure a model.")
    print(banner)
    return 0
