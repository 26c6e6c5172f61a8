"""Benchmark: what the metrics cost next to the forward passes, at the real widths of 7B VLMs.

Default (``--mode widths``): random models with the real hidden sizes of LLaVA-1.5-7B (CLIP
ViT-L/14-336: width 1024, 576 patches; Llama width 4096) and Qwen2.5-VL-7B (ViT width 1280,
448 px images: 1024 patches, 256 image tokens; LLM width 3584), but only ``--depth`` layers
(default 2 vision, 1 LLM). Per round, on the same preloaded batch: ``represent_batch`` (the
forward passes; time inside the vision and LLM layers measured with hooks), then
``reduce_batch`` (the metrics as the pipeline now computes them), then the previous metric
path (commit f0b06ac, full Gram per stage). Rounds are repeated, medians kept. The metrics'
share of the forward time is printed as measured at this depth and extrapolated to the
published depth (24 + 32 layers for LLaVA, 32 + 28 for Qwen: per-layer time x real layers
+ the time outside the layers; ``--depth real`` builds the published depth, e.g. on a GPU).
With CUDA, the metrics are also timed with the eigen-solver on the CPU. Verdict: share at the
real depth < 3% on CPU (< 10%, i.e. forward + metrics within 1.1x of the forward, on a GPU),
metrics run after the forward passes (no overlap); exits 1 on a MISS.

``--mode naive``: mm-align's ``score()`` against what a user of the official code would write
(batch 1, three LLM passes with ``output_hidden_states``, d x d SVD), on a tiny or medium
random checkpoint: throughput and agreement of per-sample eRanks. Peak memory of ``score()``
is measured by ``scripts/bench_score.py``.

``--video N``: each sample is a clip of N frames instead of an image (a pan across a bundled
photo, every frame at the model's image size; Qwen2.5-VL: N / 2 x 256 video tokens), for the
families that take video; the same verdict applies to a video sample's metrics.

Usage: python scripts/bench_pipeline.py [--models llava-1.5-7b,qwen2.5-vl-7b] [--batch 2|1,8,32]
       [--video 16]
       [--repeats 3] [--depth 2,1|real] [--device cuda --dtype bfloat16] [--threads N]
       python scripts/bench_pipeline.py --mode naive [--family qwen2_5_vl|llava] [--size medium]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

# scripts/ is not a package: reuse the sibling benchmarks' helpers from their own folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Verdicts, clock, old_spectrum, pin_threads, set_clock, sync
from bench_score import cycled_manifest

BATCH_SIZE = 8  # score()'s default
TARGET_SPEEDUP = 3.0  # naive mode
CPU_SHARE, GPU_SHARE = 0.03, 0.10  # metrics / forward at the real depth
VIDEO_MODELS = ("qwen2.5-vl-7b",)  # the real-width models whose family takes video

# Why the naive rows of a stage differ from mm-align's (mm-align keeps only the tokens of the
# user text in "text", plus the image tokens in "joint").
TOKEN_NOTES = {
    "qwen2_5_vl": "token selection: vision, projector, image and text rows are the same (Qwen has "
                  "no BOS); the naive joint also keeps <|vision_end|> (the first token after the "
                  "image tokens), so joint differs slightly by design",
    "llava": "token selection: vision, projector, image and joint rows are the same; the naive "
             "text-alone pass also keeps BOS <s>, so text differs slightly by design",
}


# ---- the naive pipeline: what a user of the official code writes ------------------------------

class Naive:
    """Batch size 1, three LLM passes with output_hidden_states, one vision pass, official eRank."""

    def __init__(self, path: str) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model = AutoModelForImageTextToText.from_pretrained(path).eval()
        self.processor = AutoProcessor.from_pretrained(path)
        self.family = self.model.config.model_type
        self.image_token_id = self.model.config.image_token_id
        if self.family == "qwen2_5_vl":
            self.image_prompt = "<|vision_start|><|image_pad|><|vision_end|>"
        elif self.family == "llava":
            self.image_prompt = "<image>"
        else:
            raise SystemExit(f"the naive pipeline knows qwen2_5_vl and llava, not {self.family}")

    def vision_features(self, inputs: dict):
        """(vision-encoder output as fed to the projector, projector output) of one image."""
        if self.family == "qwen2_5_vl":
            out = self.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            return out.last_hidden_state, out.pooler_output[0]
        config = self.model.config
        tower = self.model.model.vision_tower(inputs["pixel_values"], output_hidden_states=True)
        feats = tower.hidden_states[config.vision_feature_layer]
        if config.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]  # drop CLS
        return feats[0], self.model.model.multi_modal_projector(feats)[0]

    def erank_sample(self, image_path: str, text: str) -> dict[str, tuple[float, int]]:
        """Per stage: (official eRank, token rows)."""
        import torch
        from bench_spectral import official_erank
        from PIL import Image

        image = Image.open(image_path).convert("RGB")
        with torch.no_grad():
            img_in = self.processor(images=[image], text=[self.image_prompt], return_tensors="pt")
            txt_in = self.processor(text=[text], return_tensors="pt")
            pair_in = self.processor(images=[image], text=[self.image_prompt + text], return_tensors="pt")
            vision, projector = self.vision_features(img_in)
            img_h = self.model(**img_in, output_hidden_states=True).hidden_states[-1][0]
            txt_h = self.model(**txt_in, output_hidden_states=True).hidden_states[-1][0]
            pair_h = self.model(**pair_in, output_hidden_states=True).hidden_states[-1][0]
        img_pos = img_in["input_ids"][0] == self.image_token_id
        pair_ids = pair_in["input_ids"][0]
        pair_img = pair_ids == self.image_token_id
        after = torch.arange(len(pair_ids)) > int(pair_img.nonzero().max())  # text: after the image
        states = {
            "vision": vision,
            "projector": projector,
            "image": img_h[img_pos],
            "text": txt_h,  # every token of the text-alone pass
            "joint": pair_h[pair_img | after],
        }
        return {stage: (official_erank(x.float()), x.shape[0]) for stage, x in states.items()}


# ---- mm-align measurements --------------------------------------------------------------------

@contextlib.contextmanager
def fixed_costs(seconds: dict[str, float]):
    """Time score()'s once-per-run steps (dataset summary with bootstrap CIs, HTML report)
    by wrapping the names score() calls them by; restored on exit."""
    module = importlib.import_module("mm_align.pipeline.score")
    originals = {name: getattr(module, name) for name in ("summarize", "write_report")}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    for name, fn in originals.items():
        setattr(module, name, timed(name, fn))
    try:
        yield seconds
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


# ---- metrics next to the forward passes, at real widths ----------------------------------------

def _round(adapter, images, texts, clocks, cuda: bool) -> dict[str, float]:
    """One round: forward passes (and the time inside the layers), then the metric paths."""
    from mm_align.pipeline.reduce import reduce_batch

    def timed(fn) -> float:
        sync()
        t0 = clock()
        fn()
        sync()
        return clock() - t0

    with clocks[0].running(), clocks[1].running():
        reps: list = []
        forward = timed(lambda: reps.extend(adapter.represent_batch(images, texts)))
    out = {"forward": forward, "vision_layers": clocks[0].seconds, "llm_layers": clocks[1].seconds,
           "metrics": timed(lambda: reduce_batch(reps)),
           "metrics_before": timed(lambda: [float(old_spectrum(r[s]).sum()) for r in reps for s in r])}
    if cuda:
        out["metrics_cpu_eig"] = timed(lambda: reduce_batch(reps, device="cpu"))
    return out


def _print_batch(name: str, spec, depth, t: dict[str, float], batch: int, cuda: bool,
                 verdicts: Verdicts) -> None:
    outside = t["forward"] - t["vision_layers"] - t["llm_layers"]
    real = (outside + t["vision_layers"] / depth[0] * spec.real_depth[0]
            + t["llm_layers"] / depth[1] * spec.real_depth[1])
    rows = [("forward passes (represent_batch)", t["forward"]),
            ("  inside vision layers", t["vision_layers"]), ("  inside LLM layers", t["llm_layers"]),
            ("  outside the layers", outside), ("forward at the real depth (extrap.)", real),
            ("metrics now (reduce_batch)", t["metrics"]),
            ("metrics before (f0b06ac path)", t["metrics_before"])]
    if cuda:
        rows.append(("metrics now, eigvalsh on CPU", t["metrics_cpu_eig"]))
    print(f"   batch {batch}: {batch / t['forward']:.2f} samples/s forward, "
          f"{batch / (t['forward'] + t['metrics']):.2f} samples/s forward + metrics")
    print(f"   {'':<38} {'s/batch':>9} {'ms/sample':>10} {'% of real fwd':>14}")
    for label, s in rows:
        print(f"   {label:<38} {s:>9.3f} {1000 * s / batch:>10.1f} {100 * s / real:>13.2f}%")
    share = t["metrics"] / real
    target = GPU_SHARE if cuda else CPU_SHARE
    print(f"   metrics share of forward: now {100 * t['metrics'] / t['forward']:.1f}% at this depth, "
          f"{100 * share:.2f}% at the real depth; before "
          f"{100 * t['metrics_before'] / t['forward']:.1f}% / {100 * t['metrics_before'] / real:.2f}%")
    print("   " + verdicts.check(f"{name} batch {batch} metrics share at the real depth",
                                 share < target, f"{100 * share:.2f}%", f"< {100 * target:g}%"))


def pan_clip(image, n_frames: int):
    """A clip of ``n_frames`` frames panning across ``image`` (rolled sideways, wrapping)."""
    import numpy as np

    from mm_align.data.video import Video

    pixels = np.asarray(image)
    step = max(1, pixels.shape[1] // (2 * n_frames))
    frames = np.stack([np.roll(pixels, -k * step, axis=1) for k in range(n_frames)])
    return Video(frames, fps=2.0, indices=tuple(range(n_frames)), total_frames=n_frames, name="pan")


def widths_one(name: str, args: argparse.Namespace, root: Path, verdicts: Verdicts) -> None:
    from PIL import Image
    from real_widths import REAL, LayerClock, build, vision_layers

    from mm_align.adapters.modules import resolve_dtype

    spec = REAL[name]
    if args.video and name not in VIDEO_MODELS:
        print(f"\n{name}: skipped, --video needs a family that takes video ({', '.join(VIDEO_MODELS)})")
        return
    depth = spec.real_depth if args.depth == "real" else tuple(int(v) for v in args.depth.split(","))
    cuda = args.device.startswith("cuda")
    t0 = time.perf_counter()
    adapter = build(name, root, depth, args.device, resolve_dtype(args.dtype))
    built = time.perf_counter() - t0
    batches = [int(b) for b in args.batch.split(",")]
    manifest = cycled_manifest(root / "data.jsonl", max(batches))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    images = [Image.open(r["image"]).convert("RGB").resize((spec.pixels, spec.pixels)) for r in rows]
    if args.video:
        images = [pan_clip(image, args.video) for image in images]
        name = f"{name} video of {args.video} frames"
    texts = [r["text"] for r in rows]
    clocks = (LayerClock(vision_layers(adapter), clock), LayerClock(adapter._decoder_layers, clock))
    _round(adapter, images[:1], texts[:1], clocks, cuda)  # warm-up
    rep = adapter.represent(images[0], texts[0])
    print(f"\n{name} widths, depth {depth[0]} vision + {depth[1]} LLM layers (real: "
          f"{spec.real_depth[0]} + {spec.real_depth[1]}), {args.dtype} on {args.device}, "
          f"median of {args.repeats} rounds; built in {built:.0f} s (wall)")
    print("   per sample: " + ", ".join(f"{s} {tuple(rep[s].shape)}" for s in rep))
    for batch in batches:
        rounds = [_round(adapter, images[:batch], texts[:batch], clocks, cuda) for _ in range(args.repeats)]
        t = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        _print_batch(name, spec, depth, t, batch, cuda, verdicts)
    del adapter


def widths_main(args: argparse.Namespace) -> int:
    verdicts = Verdicts()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            widths_one(name, args, Path(tmp), verdicts)
    return verdicts.exit_code()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scale_llava(path: str | Path) -> None:
    """Grow the tiny LLaVA checkpoint in ``path`` to the 91M-parameter medium size, in place."""
    import torch
    from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration

    config, processor = AutoConfig.from_pretrained(path), AutoProcessor.from_pretrained(path)
    config.vision_config.update({"hidden_size": 384, "intermediate_size": 1536,
                                 "num_hidden_layers": 6, "num_attention_heads": 6,
                                 "image_size": 224})
    config.text_config.update({"hidden_size": 1024, "intermediate_size": 2816,
                               "num_hidden_layers": 8, "num_attention_heads": 16,
                               "num_key_value_heads": 16})
    processor.image_processor.size = {"shortest_edge": 224}
    processor.image_processor.crop_size = {"height": 224, "width": 224}
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


def naive_main(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model:
            model_path = Path(args.model)
            label = str(model_path)
        else:
            model_path = root / "model"
            family = "llava" if args.size == "medium" else args.family
            subprocess.run([sys.executable, "-m", "mm_align", "tiny", family, str(model_path)],
                           check=True, capture_output=True)
            if args.size == "medium":  # in a child process: this one stays small
                code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"import bench_pipeline; bench_pipeline.scale_llava({str(model_path)!r})")
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            label = f"{args.size} {family} (random weights)"

        warnings.filterwarnings("ignore")

        from mm_align import load_vlm
        from mm_align.pipeline import score
        from mm_align.stages import STAGES

        data = cycled_manifest(root / "data.jsonl", args.samples)
        rows = read_jsonl(data)
        n = len(rows)

        # throughput: naive vs score(), each warmed up, runs interleaved, best kept
        naive = Naive(str(model_path))
        adapter = load_vlm(str(model_path))
        family = naive.family
        naive.erank_sample(rows[0]["image"], rows[0]["text"])
        score(adapter, cycled_manifest(root / "warm.jsonl", BATCH_SIZE), root / "run-warm",
              progress=False)
        naive_runs, mm_runs = [], []
        for k in range(args.repeats):
            t0 = time.perf_counter()
            eranks = {r["id"]: naive.erank_sample(r["image"], r["text"]) for r in rows}
            naive_runs.append(time.perf_counter() - t0)
            with fixed_costs({}) as fixed:
                t0 = time.perf_counter()
                summary = score(adapter, data, root / f"run-{k}", progress=False)
                mm_runs.append((time.perf_counter() - t0, sum(fixed.values())))
            if k == 0:
                naive_eranks = eranks
                results = {r["id"]: r for r in read_jsonl(root / "run-0" / "results.jsonl")}
        del naive

    naive_s = min(naive_runs)
    mm_s, fixed_s = min(mm_runs)
    naive_rate, mm_rate = n / naive_s, summary["n_samples"] / mm_s
    loop_rate = summary["n_samples"] / (mm_s - fixed_s)
    speedup = mm_rate / naive_rate
    print(f"{label}; CPU; "
          f"{n} samples (the {len({r['image'] for r in rows})} bundled photos, cycled); "
          f"load average {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")

    print(f"\nthroughput, best of {args.repeats} interleaved runs (end to end: manifest, images, "
          "forward passes, eRanks; mm-align also writes its run dir, summary and HTML report)")
    print(f"{'pipeline':<40} {'seconds':>8} {'samples/s':>10}")
    print(f"{'naive (batch 1, 3 LLM + 1 vision pass)':<40} {naive_s:>8.2f} {naive_rate:>10.2f}")
    print(f"{'mm-align score() (batch 8)':<40} {mm_s:>8.2f} {mm_rate:>10.2f}")
    print(f"{'  of which summary + report (per run)':<40} {fixed_s:>8.2f}")
    print(f"{'  mm-align without them':<40} {mm_s - fixed_s:>8.2f} {loop_rate:>10.2f}")
    print(f"speed-up mm-align / naive: {speedup:.2f}x end to end ({loop_rate / naive_rate:.2f}x "
          f"without summary + report)  (target >= {TARGET_SPEEDUP:g}x)  "
          f"{verdict(speedup >= TARGET_SPEEDUP)}")

    print("\nagreement of per-sample eRanks, naive (official: d x d, torch.svd, float32) vs "
          "mm-align (float64), same samples")
    print(f"{'stage':<10} {'naive mean':>11} {'mm-align mean':>14} {'mean |rel diff|':>16} "
          f"{'max |rel diff|':>15} {'rows naive':>11} {'rows mm-align':>14}")
    common = [i for i in naive_eranks if i in results]
    for stage in STAGES:
        a = [naive_eranks[i][stage][0] for i in common]
        b = [results[i][f"erank_{stage}"] for i in common]
        rel = [abs(x - y) / y for x, y in zip(a, b)]
        rows_a = statistics.mean(naive_eranks[i][stage][1] for i in common)
        rows_b = statistics.mean(results[i]["tokens"][stage] for i in common)
        print(f"{stage:<10} {statistics.mean(a):>11.3f} {statistics.mean(b):>14.3f} "
              f"{statistics.mean(rel):>16.2e} {max(rel):>15.2e} {rows_a:>11.1f} {rows_b:>14.1f}")
    print(TOKEN_NOTES.get(family, ""))

    if speedup < TARGET_SPEEDUP:
        print(f"why MISS (speed-up): score() spends {fixed_s:.2f} s once per run on the summary "
              f"(bootstrap CIs) and the HTML report (matplotlib), {100 * fixed_s / mm_s:.0f}% of "
              f"its time over {n} samples; and a tiny model's forward passes are so cheap that "
              f"the per-sample processor calls, which batching does not save, weigh as much; "
              f"with a real model the forward passes (4 per sample naive, 2 per batch of 8 "
              f"mm-align) dominate and the per-run cost vanishes")
    return 0 if speedup >= TARGET_SPEEDUP else 1


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="widths", choices=["widths", "naive"])
    parser.add_argument("--threads", type=int, help="CPU threads (default: all usable)")
    parser.add_argument("--clock", choices=["cpu", "wall"],
                        help="timer of widths mode (default: CPU time without CUDA, else wall)")
    widths = parser.add_argument_group("widths mode")
    widths.add_argument("--models", default="llava-1.5-7b,qwen2.5-vl-7b")
    widths.add_argument("--depth", default="2,1",
                        help="vision layers,LLM layers; 'real': the published depths")
    widths.add_argument("--batch", default="2", help="samples per batch (comma list: each)")
    widths.add_argument("--repeats", type=int, default=3, help="rounds (median)")
    widths.add_argument("--device", default="cpu")
    widths.add_argument("--dtype", default="float32")
    widths.add_argument("--video", type=int, default=0, metavar="N",
                        help="samples are clips of N frames (families that take video)")
    naive = parser.add_argument_group("naive mode")
    naive.add_argument("--family", default="qwen2_5_vl", choices=["qwen2_5_vl", "llava"],
                       help="tiny checkpoint to build (ignored with --model)")
    naive.add_argument("--model", help="an existing checkpoint instead of a tiny one")
    naive.add_argument("--size", default="tiny", choices=["tiny", "medium"],
                       help="medium: a 91M-parameter random LLaVA (CLIP 224 px, 256 image "
                       "tokens; Llama width 1024, 8 layers) (~7 min on 2 cores)")
    naive.add_argument("--samples", type=int, default=40, help="samples for throughput and agreement")
    args = parser.parse_args()
    print(pin_threads(args.threads))
    if args.mode == "naive":
        print("clock: wall time, best of the interleaved runs")
        return naive_main(args)
    print(set_clock(args.clock))
    return widths_main(args)


if __name__ == "__main__":
    sys.exit(main())
