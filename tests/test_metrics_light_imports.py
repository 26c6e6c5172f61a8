"""The neighbouring-metric modules import only torch and numpy: scikit-learn (Lasso) and scipy
(offset power-law fit) load lazily inside the functions that need them, and nothing pulls in
transformers, torchvision or matplotlib. Checked in a fresh interpreter with the top-level
``mm_align`` package (which imports the adapters) bypassed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = ("mir", "cka", "knn", "rankme", "scaling", "info_gain", "attribution")
HEAVY = ("sklearn", "scipy", "transformers", "torchvision", "matplotlib")

SCRIPT = f"""
import sys, types
pkg = types.ModuleType("mm_align")
pkg.__path__ = [{str(Path(__file__).resolve().parents[1] / "mm_align")!r}]
sys.modules["mm_align"] = pkg
import importlib
for name in {MODULES!r}:
    importlib.import_module("mm_align.metrics." + name)
print(",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_metric_modules_do_not_import_heavy_packages() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported: {out.stdout.strip()}"
