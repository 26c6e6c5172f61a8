"""``mm-align score``: a VLM over an image-caption set."""

from __future__ import annotations

import argparse

from mm_align.data import DEFAULT_MAX_PIXELS
from mm_align.pipeline.controls import CONTROLS, PERTURBATIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score a VLM on an image-caption set (the paper's five eRanks and two ratios)",
        description=(
            "Score a vision-language model on an image-caption set: per-sample eRanks of the "
            "vision encoder, projector and LLM (image / text / image+text), the Image "
            "Reduction Ratio and Image-Text Alignment, a dataset summary with 95%% bootstrap "
            "intervals and an HTML report, written to --out."
        ),
    )
    p.add_argument("--model", required=True, help="checkpoint folder or hub id")
    p.add_argument("--data", required=True,
                   help="manifest (.jsonl/.csv), imagefolder, saved HF dataset, hub dataset, "
                        "LLaVA detail_23k.json or cc_sbu_align folder")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (default 8)")
    p.add_argument("--limit", type=int, help="score only the first N samples")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="model precision (metrics are always computed in float64)")
    p.add_argument("--device-map", help="e.g. 'auto': spread a large model over all visible GPUs "
                   "(accelerate); overrides --device")
    p.add_argument("--projector", help="swap in connector weights from a .safetensors file or a "
                   "LLaVA-style mm_projector.bin before scoring")
    p.add_argument("--baseline", choices=["untrained"],
                   help="also score with the LLM randomly re-initialised (seeded) and report "
                   "the LLM stages' Diff-eRank (untrained minus trained)")
    p.add_argument("--layers", help="LLM layers to sweep besides the last: 'all' or e.g. '0,8,-1'")
    p.add_argument("--prompt", default="plain", choices=["plain", "chat"],
                   help="plain: image then text, no template (default); chat: the chat template")
    p.add_argument("--include-special", action="store_true",
                   help="count special and template tokens in the LLM stages")
    p.add_argument("--seed", type=int, default=0, help="seed of controls and bootstrap (default 0)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad sample")
    p.add_argument("--control", action="append", default=[], choices=list(CONTROLS),
                   help="also run a control into OUT/controls/NAME (repeatable)")
    p.add_argument("--perturb", action="append", default=[], choices=list(PERTURBATIONS),
                   help="also run an image perturbation into OUT/controls/NAME (repeatable)")
    p.add_argument("--image-root", help="image folder for detail_23k-style data")
    p.add_argument("--image-column", help="image column of a HF dataset (default: image)")
    p.add_argument("--text-column", help="text column of a HF dataset (default: text)")
    p.add_argument("--split", help="split of a HF dataset dict")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images larger than this many pixels (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.pipeline import format_table, score
    from mm_align.pipeline.distributed import Workers

    summary = score(
        args.model, args.data, args.out,
        batch_size=args.batch_size, limit=args.limit, resume=args.resume, device=args.device,
        dtype=args.dtype, device_map=args.device_map, projector=args.projector, baseline=args.baseline, layers=args.layers, prompt=args.prompt,
        include_special=args.include_special, seed=args.seed, strict=args.strict,
        controls=[*args.control, *args.perturb], image_root=args.image_root,
        image_column=args.image_column, text_column=args.text_column, split=args.split,
        max_pixels=args.max_pixels,
        progress=not args.no_progress,
    )
    if Workers.from_env().is_main:  # one table, not one per data-parallel process
        print(format_table(summary))
        print(f"\nresults in {args.out}")
    return 0
