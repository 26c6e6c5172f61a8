"""Write synthetic, schema-correct run directories (docs/ARCHITECTURE.md, "Run directory").

The numbers are random but consistent with each other the way the pipeline's are: per-sample
eRanks are exp(entropy), per-sample ratios come from per-sample eRanks, the summary's eRanks
are exp(mean entropy), its ratios come from those, and its ``ci95`` (and the per-layer
``layers_ci95``) from :func:`mm_align.metrics.bootstrap.bootstrap_ci`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mm_align.metrics.aggregate import image_reduction_ratio, image_text_alignment
from mm_align.metrics.bootstrap import STAGES, bootstrap_ci, dataset_metrics
from mm_align.pipeline.summary import control_differences

# Centre of each stage's eRank: the paper's LLaVA-1.5 / detail_23k values (Table 2).
BASE_ERANK = {"vision": 18.34, "projector": 11.28, "image": 45.62, "text": 74.21, "joint": 76.34}
LAYERS = (0, 4, 8, 12)
NASTY_TEXT = 'A <b>bold</b> "claim" & <script>alert(1)</script> of a cat'


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def _spectrum(erank: float, k: int = 64) -> list[float]:
    """A decreasing, normalised power-law spectrum; steeper for a smaller eRank."""
    decay = 1.0 + 8.0 / math.sqrt(erank)
    eig = np.arange(1, k + 1, dtype=float) ** -decay
    return (eig / eig.sum()).tolist()


def _write_image(path: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((48, 64, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(path)


def _layer_intervals(layer_H: dict[str, dict[int, np.ndarray]], seed: int) -> dict:
    """``summary["layers_ci95"]``: stage or ``image_text_alignment`` -> {layer: [low, high]},
    the bootstrap intervals of each layer's dataset values, as the pipeline is to write them."""
    out: dict[str, dict[str, list[float]]] = {}
    for layer in LAYERS:
        cis = bootstrap_ci({s: per[layer] for s, per in layer_H.items()}, n_boot=200, seed=seed)
        for stage in layer_H:
            out.setdefault(stage, {})[str(layer)] = list(cis[f"erank_{stage}"])
        out.setdefault("image_text_alignment", {})[str(layer)] = list(cis["image_text_alignment"])
    return out


def make_run(
    path: str | Path,
    n: int = 24,
    seed: int = 0,
    joint_shift: float = 0.0,
    fingerprint: str | None = "sha256:0f1e2d3c",
    ids: Iterable[str] | None = None,
    layers: bool = True,
    n_errors: int = 2,
    images: bool = True,
    missing_images: int = 1,
    controls: Iterable[str] = (),
    model_note: str
    | None = "random-weight tiny checkpoint (mm_align_tiny): values are meaningless",
    note_at_top: bool = False,
) -> Path:
    """Write a finished run directory and return its path.

    Args:
        n: number of scored samples (results lines).
        seed: drives every random number; two runs with the same seed and ids hold the same
            per-sample entropies, except for ``joint_shift``.
        joint_shift: added to every sample's joint entropy (nats), to make a run that differs.
        fingerprint: ``provenance.data.fingerprint``; None leaves it out.
        ids: sample ids (default ``s000`` ...); must have n entries.
        layers: write per-layer eRanks (results ``layers`` / ``layer_entropies``,
            ``summary.layers`` and their intervals ``summary.layers_ci95``).
        n_errors: lines of errors.jsonl (0 writes no errors.jsonl at all).
        images: write image files and put their paths in the results; else ``image`` is null.
        missing_images: how many of the results point to an image file that does not exist.
        controls: names of control sub-runs to write under ``controls/``.
        model_note: the model warning; None leaves it out. The pipeline stores it as
            ``provenance.model.note``; ``note_at_top`` puts it at ``provenance.model_note``.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"s{i:03d}" for i in range(n)] if ids is None else list(ids)
    assert len(ids) == n, "one id per sample"

    common = rng.normal(0, 0.15, n)
    H = {
        s: np.log(e) + common + rng.normal(0, 0.2, n) + (joint_shift if s == "joint" else 0.0)
        for s, e in BASE_ERANK.items()
    }
    layer_H = {
        s: {
            layer: H[s] - 0.15 * (LAYERS[-1] - layer) / 4 + rng.normal(0, 0.05, n)
            for layer in LAYERS
        }
        for s in ("image", "text", "joint")
    }
    if images:
        (root / "images").mkdir(exist_ok=True)

    results = []
    for i, sid in enumerate(ids):
        er = {s: math.exp(H[s][i]) for s in STAGES}
        image = None
        if images:
            image_path = (root / "images" / f"{sid}.png").resolve()
            if i >= missing_images:
                _write_image(image_path, seed * 1000 + i)
            image = str(image_path)
        record = {
            "id": sid,
            "index": i,
            **{f"erank_{s}": er[s] for s in STAGES},
            **{f"entropy_{s}": float(H[s][i]) for s in STAGES},
            "image_reduction_ratio": image_reduction_ratio(er["vision"], er["projector"]),
            "image_text_alignment": image_text_alignment(er["image"], er["text"], er["joint"]),
            "tokens": {
                "vision": 576,
                "projector": 576,
                "image": 578,
                "text": 40 + i,
                "joint": 616 + i,
            },
            "spectra": {s: _spectrum(er[s]) for s in STAGES},
            "text": NASTY_TEXT if i == 0 else f"Describe image {sid}. It shows object number {i}.",
            "image": image,
        }
        if layers:
            record["layers"] = {
                s: {str(layer): math.exp(v[i]) for layer, v in per.items()}
                for s, per in layer_H.items()
            }
            record["layer_entropies"] = {
                s: {str(layer): float(v[i]) for layer, v in per.items()}
                for s, per in layer_H.items()
            }
        results.append(record)
    _write_jsonl(root / "results.jsonl", results)

    errors = [
        {
            "id": f"bad{j}",
            "index": n + j,
            "stage": ("load", "model", "metric")[j % 3],
            "reason": f"cannot identify image file 'bad{j}.jpg' <corrupt> & truncated",
        }
        for j in range(n_errors)
    ]
    if errors:
        _write_jsonl(root / "errors.jsonl", errors)

    entropies = {s: H[s].tolist() for s in STAGES}
    metrics = dataset_metrics(entropies)
    summary = {
        "n_samples": n,
        "n_errors": n_errors,
        "erank": {s: metrics[f"erank_{s}"] for s in STAGES},
        "erank_mean": {s: float(np.exp(H[s]).mean()) for s in STAGES},
        "image_reduction_ratio": metrics["image_reduction_ratio"],
        "image_text_alignment": metrics["image_text_alignment"],
        "ci95": {k: list(v) for k, v in bootstrap_ci(entropies, n_boot=200, seed=seed).items()},
        "provenance": {
            "model": {
                "name_or_path": "/ckpt/tiny-llava",
                "revision": None,
                "weights": "sha256:77aa",
            },
            "data": {
                "path": "/data/manifest.jsonl",
                "description": "jsonl manifest",
                "fingerprint": fingerprint,
            },
            "dtype": "float32",
            "prompt": "plain",
            "layers": list(LAYERS) if layers else None,
            "control": None,
            "versions": {"mm_align": "0.1.0", "torch": "2.4"},
        },
        "tokens_mean": {s: 100.0 for s in STAGES},
    }
    if fingerprint is None:
        del summary["provenance"]["data"]["fingerprint"]
    if model_note is not None and note_at_top:
        summary["provenance"]["model_note"] = model_note
    elif model_note is not None:
        summary["provenance"]["model"]["note"] = model_note
    if layers:
        summary["layers"] = {
            s: {str(layer): math.exp(float(v.mean())) for layer, v in per.items()}
            for s, per in layer_H.items()
        }
        # the pipeline stores the per-layer alignment next to the stages
        summary["layers"]["image_text_alignment"] = {
            layer: image_text_alignment(
                *(summary["layers"][s][layer] for s in ("image", "text", "joint"))
            )
            for layer in summary["layers"]["image"]
        }
        summary["layers_ci95"] = _layer_intervals(layer_H, seed)
    (root / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (root / "config.json").write_text(json.dumps({"model": "tiny", "seed": seed}), encoding="utf-8")

    controls = list(controls)
    for k, name in enumerate(controls):
        make_run(
            root / "controls" / name,
            n=n,
            seed=seed + 101 + k,
            joint_shift=joint_shift + 0.4,
            fingerprint=fingerprint,
            ids=ids,
            layers=False,
            n_errors=0,
            images=False,
            model_note=model_note,
        )
    if controls:  # as the pipeline does: each control's paired difference from the real run
        control_results = {
            name: [json.loads(line) for line in (root / "controls" / name / "results.jsonl").open()]
            for name in controls
        }
        summary["controls"] = control_differences(results, control_results, n_boot=200, seed=seed)
        (root / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return root
