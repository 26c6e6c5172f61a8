"""``mm-align families``: every served model family, what a sample brings besides its text
(image or audio), where its stages are read, whether its image tokens are a causal prefix, its
prompt styles, whether it takes video clips (with its default frames) and several images per
sample, and a hub checkpoint;
then the families that could not be loaded, with the reason. docs/FAMILIES.md holds the same
table (a test keeps them equal)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

_HEADER = ("model_type", "modality", "vision tap (patches)", "merged view", "projector tap", "causal prefix",
           "prompts", "video (default frames)", "images per sample", "example")


def _video(cls: Any) -> str:
    """A family's video support in words: its default frames, or "-"."""
    frames = cls.frame_sampling
    if frames is None:
        return "-"
    if frames.fps is not None:
        return f"{frames.fps:g} per second, at most {frames.max_frames}"
    return f"{frames.num_frames} evenly spread"


def family_rows() -> list[tuple[str, ...]]:
    """One row per served family, in :data:`_HEADER`'s columns."""
    from mm_align.adapters import adapter_class, supported_families  # heavy: when listing only

    rows: list[tuple[str, ...]] = []
    for family in supported_families():
        cls = adapter_class(family)
        taps = cls.taps()
        prefix = "yes" if cls.image_prefix_is_image_only else "no: image-only pass"
        several = "several" if cls.max_images_per_sample is None else str(cls.max_images_per_sample)
        if cls.modality != "image":  # an audio model: one clip per sample, no images
            several = "-"
        rows.append((family, cls.modality, taps["vision"], taps.get("merged", "-"), taps["projector"], prefix,
                     ", ".join(cls.prompt_styles), _video(cls), several, cls.example_id or "-"))
    return rows


def families_table() -> str:
    """The served families as a Markdown table."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    code = (0, len(_HEADER) - 1)  # model_type and example
    lines += ["| " + " | ".join(f"`{cell}`" if i in code else cell for i, cell in enumerate(row)) + " |"
              for row in family_rows()]
    return "\n".join(lines)


def families_text(width: int = 100) -> str:
    """The served families for the terminal, one block per family, no line over ``width``."""
    blocks = []
    for family, modality, vision, merged, projector, prefix, prompts, video, images, example in family_rows():
        head = (f"{family}: prompts {prompts}; modality: {modality}; image tokens a causal prefix: {prefix}; "
                f"video: {video}; images per sample: {images}; e.g. {example}")
        lines = textwrap.wrap(head, width, subsequent_indent="    ", break_on_hyphens=False)
        for label, tap in (("vision", vision), ("merged", merged), ("projector", projector)):
            if tap != "-":
                lines += textwrap.wrap(f"  {label:<10} {tap}", width, subsequent_indent=" " * 13)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "families",
        help="list the served model families and where each stage is read",
        description=(
            "List every served model_type: its modality (image or audio), where the vision "
            "(or audio encoder) and projector stages are read, "
            "whether the image tokens are a causal prefix (else the image stage comes from an "
            "image-only pass), prompt styles, video clips (default frames) and images per sample, "
            "and an example checkpoint; then the families that "
            "could not be loaded, with the reason."
        ),
    )
    p.add_argument("--format", choices=("text", "markdown"), default="text", dest="fmt",
                   help="text: one block per family, 100 columns; markdown: the table of "
                        "docs/FAMILIES.md (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_align.adapters import disabled_families

    print(families_table() if args.fmt == "markdown" else families_text())
    disabled = disabled_families()
    if disabled:
        print("\nnot available:")
        for name, reason in disabled.items():
            print(f"- {name}: {reason}")
    return 0
