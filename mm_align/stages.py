"""The paper's five representations of an image-text sample (Diff-eRank, section 5.2), by
the names every layer of mm-align uses for them."""

STAGES = ("vision", "projector", "image", "text", "joint")
"""eRank1..eRank5: vision-encoder output, projector output, and the LLM's states at the image
tokens, for the text alone, and for the image-text pair."""

VISION_STAGES = ("vision", "projector")
"""Before the LLM: the Image Reduction Ratio compares these two."""

LLM_STAGES = ("image", "text", "joint")
"""LLM hidden states: the Image-Text Alignment compares these three; layer sweeps cover them."""

METRICS = tuple(f"erank_{s}" for s in STAGES) + ("image_reduction_ratio", "image_text_alignment")
"""Dataset-level metrics of a run, by the keys used in summaries, intervals and comparisons."""


def visual_kind(modality: object) -> str:
    """What a run's visual inputs are, for the names of its metrics: ``"Video"`` when every
    sample was a clip (``modality``: the provenance's list, e.g. ``["video"]``), else
    ``"Image"``. A "Video Reduction Ratio" is the Image Reduction Ratio's formula over clips.

    >>> visual_kind(["video"]), visual_kind(["image", "video"]), visual_kind(None)
    ('Video', 'Image', 'Image')
    """
    return "Video" if list(modality or []) == ["video"] else "Image"  # type: ignore[call-overload]
