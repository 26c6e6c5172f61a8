"""Regenerate ``data/sample/``: real photographs with hand-written captions, in the Hugging
Face ``imagefolder`` layout (``metadata.jsonl`` with ``file_name``, ``text``, ``id``).

The photographs ship inside installed wheels (scikit-image's ``skimage.data`` and
matplotlib's sample data), so no network is needed. Each is resized so that its longer
side is at most ``LONG_SIDE`` px (Lanczos) and saved as a baseline JPEG at a fixed quality
without metadata: the output is byte-for-byte reproducible for a given Pillow/libjpeg
version. Licences are recorded in ``data/sample/README.md``.

Usage: ``python scripts/make_sample_data.py [OUT_DIR]`` (default ``data/sample``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage.data
from matplotlib import cbook
from PIL import Image

LONG_SIDE = 320
JPEG_QUALITY = 85


def _skimage(name: str) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(np.asarray(getattr(skimage.data, name)()))


def _grace_hopper() -> Image.Image:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        return img.convert("RGB")


# id -> (image loader, caption). Captions are original one-sentence descriptions.
SAMPLES: dict[str, tuple[Callable[[], Image.Image], str]] = {
    "astronaut": (
        _skimage("astronaut"),
        "A smiling astronaut in an orange flight suit holds a white helmet in front of an "
        "American flag and a model of the space shuttle.",
    ),
    "camera": (
        _skimage("camera"),
        "A black and white photo of a man in a dark coat looking through a camera on a "
        "tripod in a grassy field, with buildings in the distance.",
    ),
    "chelsea": (
        _skimage("chelsea"),
        "A close-up of a tabby cat with green eyes and orange and brown striped fur "
        "looking straight at the camera.",
    ),
    "coffee": (
        _skimage("coffee"),
        "A cup of espresso on a red saucer with a small spoon, resting on a wooden table.",
    ),
    "rocket": (
        _skimage("rocket"),
        "A white rocket stands on its launch pad at dusk, lit by floodlights between tall "
        "lightning towers.",
    ),
    "hubble_deep_field": (
        _skimage("hubble_deep_field"),
        "A telescope image of deep space filled with hundreds of small galaxies of "
        "different colours on a black background.",
    ),
    "immunohistochemistry": (
        _skimage("immunohistochemistry"),
        "A microscope image of stained tissue: brown glands lined with cells, surrounded "
        "by pale tissue with small blue nuclei.",
    ),
    "retina": (
        _skimage("retina"),
        "A photograph of the back of a human eye, an orange-red disc with dark blood "
        "vessels branching out from a bright spot.",
    ),
    "coins": (
        _skimage("coins"),
        "A grayscale photo of twenty-four ancient coins laid out in four rows on a dark "
        "background.",
    ),
    "clock": (
        _skimage("clock"),
        "A blurry grayscale photo of a round wall clock, smeared sideways because the "
        "camera moved.",
    ),
    "brick": (
        _skimage("brick"),
        "A grayscale close-up of a wall made of long narrow bricks laid in staggered rows.",
    ),
    "grass": (
        _skimage("grass"),
        "A grayscale close-up of a patch of grass with dense, tangled blades.",
    ),
    "gravel": (
        _skimage("gravel"),
        "A grayscale view from above of a bed of small angular gravel stones.",
    ),
    "text": (
        _skimage("text"),
        "Handwritten mathematical formulas on a sheet of paper, photographed at a steep angle.",
    ),
    "grace_hopper": (
        _grace_hopper,
        "A portrait of an elderly woman with glasses in a navy officer's uniform and cap, "
        "standing in front of an American flag.",
    ),
}


def make(out_dir: Path) -> None:
    """Write the images and ``metadata.jsonl`` into ``out_dir`` (README.md is kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for sample_id, (load, caption) in SAMPLES.items():
        img = load()
        scale = LONG_SIDE / max(img.size)
        if scale < 1:
            size = (round(img.width * scale), round(img.height * scale))
            img = img.resize(size, Image.Resampling.LANCZOS)
        file_name = f"{sample_id}.jpg"
        img.save(
            out_dir / file_name, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False
        )
        lines.append(json.dumps({"file_name": file_name, "text": caption, "id": sample_id}))
    (out_dir / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    make(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "data" / "sample"
    )
