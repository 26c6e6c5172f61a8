"""Write the pinned demo and diff-erank numbers (tests/data/*.json) with the library versions
they were computed under.

The pins guard refactors: a change that is not meant to move a number must reproduce them to
1e-12 in the environment they were written in (tests/test_api.py). Another torch or
transformers release rounds the tiny model's float32 forward differently (~1e-7 relative), so
there the tests hold them to the float32 round-off tolerance instead, and say so.

Re-pin only when a change is *meant* to move numbers (a new convention), in the same commit,
with the reason in its message:

    python scripts/pin_numbers.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mm_align  # noqa: E402
from mm_align.adapters import adapter_class  # noqa: E402
from mm_align.adapters.tiny.text import build_tiny_text_model  # noqa: E402
from mm_align.stages import STAGES  # noqa: E402
from tests.helpers import pin_environment  # noqa: E402

SAMPLE = ROOT / "data" / "sample"
DATA = ROOT / "tests" / "data"
DEMO_KEYS = ("ci95", "erank", "erank_mean", "image_reduction_ratio", "image_text_alignment",
             "n_errors", "n_samples", "tokens_mean")
DIFF_KEYS = ("ci95", "diff_erank", "erank", "erank_mean", "matrix_entropy", "n_errors", "n_samples",
             "tokens_mean")


def demo_pin(work: Path, **options: object) -> dict:
    """`mm-align tiny qwen2_5_vl` seed 0, `score --data data/sample`, defaults (but ``options``)."""
    model = work / "qwen"
    if not model.exists():
        adapter_class("qwen2_5_vl").build_tiny(model, seed=0)
    result = mm_align.score(str(model), SAMPLE, progress=False, **options)
    pin = {key: result.summary[key] for key in DEMO_KEYS}
    pin["per_sample_entropy"] = {r["id"]: {s: r[f"entropy_{s}"] for s in STAGES} for r in result.results}
    return pin


def diff_erank_pin(work: Path) -> dict:
    """`mm-align tiny opt` seed 0, `diff-erank --data data/sample/metadata.jsonl --batch-size 4`."""
    model = build_tiny_text_model(work / "opt", "opt")
    result = mm_align.diff_erank(model, SAMPLE / "metadata.jsonl", batch_size=4, progress=False)
    pin = {key: result.summary[key] for key in DIFF_KEYS}
    pin["per_sample"] = {r["id"]: {k: r[k] for k in ("entropy_trained", "entropy_untrained", "tokens")}
                         for r in result.results}
    return pin


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pins = (("demo_summary.json", demo_pin), ("diff_erank_summary.json", diff_erank_pin),
                # the demo as it was before position 0 stopped being counted (issue 22)
                ("demo_summary_count_first_position.json", partial(demo_pin, count_first_position=True)))
        for name, make in pins:
            pin = {"environment": pin_environment(), **make(Path(tmp))}
            (DATA / name).write_text(json.dumps(pin, indent=1, sort_keys=True) + "\n")
            print(f"wrote {DATA / name}")


if __name__ == "__main__":
    main()
