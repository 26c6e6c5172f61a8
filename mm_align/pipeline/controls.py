"""Controls and perturbations: re-runs whose numbers tell whether the real ones mean anything.

A control changes what the model sees, sample by sample and reproducibly from the run's
seed, and its run is written next to the real one (``RUN_DIR/controls/<name>/``):

- ``shuffled``: each image paired with another sample's text (a seeded derangement), so
  image and text no longer belong together;
- ``image-only-noise``: each image replaced by uniform RGB noise of the same size;
- ``rotate90`` / ``rotate180`` / ``hflip`` / ``grayscale``: image perturbations;
  ``rotate90`` (clockwise) is the robustness check of the paper's Table 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

# (index in the data set, RGB image, text) -> (image, text) the model sees instead.
Transform = Callable[[int, Image.Image, str], tuple[Image.Image, str]]


def _derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of range(n) without fixed points (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:  # a uniform permutation is a derangement with probability ~1/e
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm.tolist()


def _shuffled(texts: Sequence[str], seed: int) -> Transform:
    if len(texts) < 2:
        raise ValueError("the shuffled control needs at least 2 samples")
    perm = _derangement(len(texts), seed)
    return lambda index, image, text: (image, texts[perm[index]])


def _noise(seed: int) -> Transform:
    def transform(index: int, image: Image.Image, text: str) -> tuple[Image.Image, str]:
        rng = np.random.default_rng([seed, index])
        pixels = rng.integers(0, 256, size=(image.height, image.width, 3), dtype=np.uint8)
        return Image.fromarray(pixels, "RGB"), text

    return transform


def _image_op(op: Callable[[Image.Image], Image.Image]) -> Callable[[Sequence[str], int], Transform]:
    return lambda texts, seed: lambda index, image, text: (op(image), text)


CONTROLS: dict[str, Callable[[Sequence[str], int], Transform]] = {
    "shuffled": _shuffled,
    "image-only-noise": lambda texts, seed: _noise(seed),
}
PERTURBATIONS: dict[str, Callable[[Sequence[str], int], Transform]] = {
    "rotate90": _image_op(lambda im: im.transpose(Image.Transpose.ROTATE_270)),  # clockwise
    "rotate180": _image_op(lambda im: im.transpose(Image.Transpose.ROTATE_180)),
    "hflip": _image_op(ImageOps.mirror),
    "grayscale": _image_op(lambda im: ImageOps.grayscale(im).convert("RGB")),
}


#: The controls and perturbations that change the image (all but ``shuffled``): an audio model
#: has no image for them to change.
IMAGE_TRANSFORMS = frozenset({"image-only-noise", *PERTURBATIONS})


def make_transform(name: str, texts: Sequence[str], seed: int) -> Transform:
    """The transform of control or perturbation ``name``.

    Args:
        texts: the texts of the whole data set, by index (the shuffled control draws from it).
        seed: the run's seed.
    """
    table = {**CONTROLS, **PERTURBATIONS}
    if name not in table:
        raise ValueError(f"unknown control {name!r}; choose from {', '.join(table)}")
    return table[name](texts, seed)
