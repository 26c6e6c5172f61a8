"""Values shared by the option layer (:mod:`mm_align.config`) and the code that applies them
(:mod:`mm_align.data.images`, :mod:`mm_align.adapters.base`): one home, no copies.

A leaf module: it imports nothing, so the light config layer can read the defaults without
loading PIL or torch.
"""

__all__ = ["DEEPSTACK_READINGS", "DEFAULT_MAX_ASPECT_RATIO", "DEFAULT_MAX_PIXELS", "MIN_SIDE", "PROMPTS",
           "TEXT_FAMILIES", "TINY_TEXT_SEED", "VISION_VIEWS"]

# Images with more pixels are refused (a decompression-bomb guard; see data/images.py).
DEFAULT_MAX_PIXELS = 50_000_000
# Longer side / shorter side above which an image is refused (no processor tiles a 1 x 10,000 strip).
DEFAULT_MAX_ASPECT_RATIO = 200.0
# The shortest side an image may have, in pixels.
MIN_SIDE = 2
# How the image and the text are put in front of the model (see VLMAdapter's docstring).
PROMPTS: tuple[str, ...] = ("plain", "chat")
# What the rows of the "vision" stage are: one per patch, or one per merged token.
VISION_VIEWS: tuple[str, ...] = ("patches", "merged")

# Text LLM families `mm-align tiny` builds for diff-erank (mm_align.adapters.tiny.text).
TEXT_FAMILIES = ("opt", "llama")
# Their default seed: the "trained" model must differ from diff-erank's untrained init (seed 0).
TINY_TEXT_SEED = 1234
# What Qwen3-VL's deepstack layers hold at the image tokens (see VLMAdapter's docstring).
DEEPSTACK_READINGS: tuple[str, ...] = ("output", "injected")
