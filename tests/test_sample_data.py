"""scripts/make_sample_data.py regenerates the bundled data/sample folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage")

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "sample"


def test_script_regenerates_the_bundled_folder(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", ROOT / "scripts" / "make_sample_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(tmp_path)
    assert (tmp_path / "metadata.jsonl").read_text() == (BUNDLED / "metadata.jsonl").read_text()
    bundled = sorted(p.name for p in BUNDLED.glob("*.jpg"))
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == bundled
    for name in bundled:
        # JPEG bytes may differ across libjpeg versions; the pixels may not, beyond rounding.
        with Image.open(tmp_path / name) as new, Image.open(BUNDLED / name) as old:
            assert new.size == old.size and new.mode == old.mode
            diff = np.abs(np.asarray(new, dtype=int) - np.asarray(old, dtype=int))
            assert diff.mean() < 1.0, name
