"""Numbers and metric names as they are shown in the HTML pages."""

from __future__ import annotations

import math

from mm_align.metrics.bootstrap import format_p
from mm_align.stages import visual_kind

__all__ = ["AUDIO_NOTE", "METRIC_LABELS", "STAGE_LABELS", "interval", "label_of", "num", "p_value"]

STAGE_LABELS = {
    "vision": "eRank1 · vision encoder",
    "projector": "eRank2 · projector",
    "image": "eRank3 · LLM, image alone",
    "text": "eRank4 · LLM, text alone",
    "joint": "eRank5 · LLM, image + text",
}
METRIC_LABELS = {
    **{f"erank_{s}": label for s, label in STAGE_LABELS.items()},
    "image_reduction_ratio": "Image reduction ratio",
    "image_text_alignment": "Image-text alignment",
    # --metrics, as a sweep tabulates them
    **{f"rankme_{s}": f"RankMe · {s}" for s in STAGE_LABELS},
    "cka": "Linear CKA (pooled image vs text)",
    "knn": "Mutual k-NN (pooled image vs text)",
    "cknna": "CKNNA (pooled image vs text)",
    "mir": "MIR (log10, lower = better)",
}


def label_of(key: str, modality: object = None) -> str:
    """The label of metric ``key`` in a run of ``modality`` (the provenance's list): the
    reduction ratio of a run of clips is the "Video reduction ratio"."""
    label = METRIC_LABELS.get(key, key)
    return label.replace("Image", visual_kind(modality)) if key == "image_reduction_ratio" else label


def num(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits, keeping trailing zeros (0.3850, 18.34, 1235).

    Fixed-point keeps a column of ratios comparable at a glance; only magnitudes that
    fixed-point would render as 0 or as a long integer switch to scientific notation.
    """
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    # the exponent after rounding, so 9.9996 counts as 10.00 and not as 10.000
    magnitude = int(f"{x:.{digits - 1}e}".split("e")[1])
    if magnitude < -3 or magnitude >= 7:
        return f"{x:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:.{decimals}f}"


def interval(ci: tuple[float, float] | list[float] | None) -> str:
    """``[low, high]`` with :func:`num`, or a dash when there is no interval."""
    if ci is None:
        return "–"
    return f"[{num(ci[0])}, {num(ci[1])}]"


p_value = format_p  # one p-value format for the console, the pages and the exports


AUDIO_NOTE = (
    "An audio-language model, scored on audio-text pairs. The stages keep the paper's names: "
    "eRank1 'vision encoder' is the audio encoder's rows at the connector, eRank3 'LLM image' "
    "the LLM at the audio tokens (the audio heard alone), and the Image Reduction Ratio and "
    "Image-Text Alignment compare the audio in the same way (docs/CHOICES.md)."
)
"""The overview's note on a run whose provenance's ``modality`` is ``["audio"]``."""
