"""Benchmark: what ``mm_align.Probe`` costs a training run, at the real widths of LLaVA-1.5-7B.

A random model with LLaVA-1.5-7B's widths (CLIP ViT-L/14-336: width 1024, 576 patches; Llama
width 4096) and ``--depth`` layers (default 2 vision, 1 LLM; ``--depth real``: 24 + 32, on a
GPU) trains with AdamW on the bundled photos and their captions (``--train projector``: LLaVA's
stage 1, only the connector learns; ``all``: every weight). Interleaved rounds time one
training step (forward, backward, optimizer step) of ``--batch`` samples and one probe call
of ``--probe-samples`` samples (both medians), and print the probe's seconds per call, its cost
in training steps and its share of the training time when it runs every ``--every`` steps.

Memory: after each probe call, the memory the process holds must be back at its level before
the call (on CUDA ``torch.cuda.memory_allocated``, exact; on the CPU the bytes of every live
tensor found by the garbage collector), so the probe keeps no state between calls.

Verdict (exits 1 on a MISS): the probe's share of the training time at ``--every`` steps <=
``--max-share`` (default 5 % for a 64-sample probe set every 100 steps of batch 16, the
measured per-sample costs scaled to those sizes when the run used others); memory back to
its level after every call.

Usage: python scripts/bench_probe.py [--depth 2,1|real] [--batch 4] [--probe-samples 8]
       [--repeats 3] [--train projector|all] [--device cuda --dtype bfloat16] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Verdicts, interleaved, pin_threads, set_clock
from real_widths import REAL, build

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
SCALE = {"probe_samples": 64, "batch": 16, "every": 100}  # the verdict's training setup


def _pairs(n: int) -> list[tuple[object, str]]:
    from PIL import Image

    rows = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines()]
    return [(Image.open(SAMPLE / rows[i % len(rows)]["file_name"]).convert("RGB"), rows[i % len(rows)]["text"])
            for i in range(n)]


def _train_step(model, processor, batch: list, optimizer) -> None:
    inputs = processor(text=["<image>" + text for _, text in batch], images=[image for image, _ in batch],
                       return_tensors="pt", padding=True).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    labels = inputs["input_ids"].clone()
    labels[(inputs["attention_mask"] == 0) | (labels == model.config.image_token_id)] = -100
    model(**inputs, labels=labels).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _held_bytes(device: torch.device) -> int:
    """Memory the process holds in tensors: allocated CUDA memory, or the bytes of every live
    CPU tensor (their storages, each counted once)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated(device)
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _model(args, workdir: Path):
    depth = REAL["llava-1.5-7b"].real_depth if args.depth == "real" else tuple(int(x) for x in args.depth.split(","))
    adapter = build("llava-1.5-7b", workdir, depth, args.device, getattr(torch, args.dtype))
    model = adapter.model.train()
    for name, param in model.named_parameters():
        param.requires_grad_(args.train == "all" or "multi_modal_projector" in name)
    return model, adapter.processor, depth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", default="2,1", help="vision,LLM layers, or real (24,32)")
    parser.add_argument("--batch", type=int, default=4, help="training samples per step")
    parser.add_argument("--probe-samples", type=int, default=8)
    parser.add_argument("--every", type=int, default=SCALE["every"], help="probe every N steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", default="projector", choices=["projector", "all"])
    parser.add_argument("--max-share", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--clock", choices=["cpu", "wall"])
    args = parser.parse_args()
    print(pin_threads(args.threads or None))
    print(set_clock(args.clock))
    warnings.simplefilter("ignore")

    import mm_align

    with tempfile.TemporaryDirectory() as tmp:
        model, processor, depth = _model(args, Path(tmp))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = _pairs(args.batch)
    probe = mm_align.Probe(_pairs(args.probe_samples), processor=processor, batch_size=8, n_boot=1000)
    held: list[tuple[int, int]] = []

    def probe_call() -> None:
        before = _held_bytes(model.device)
        probe(model)
        held.append((before, _held_bytes(model.device)))

    _train_step(model, processor, batch, optimizer)  # the optimizer's states exist from here on
    times = interleaved({"step": lambda: _train_step(model, processor, batch, optimizer),
                         "probe": probe_call}, args.repeats)
    return _verdict(args, depth, times, held)


def _verdict(args, depth: tuple[int, int], times: dict[str, float], held: list[tuple[int, int]]) -> int:
    step, call = times["step"], times["probe"]
    per_step_sample, per_probe_sample = step / args.batch, call / args.probe_samples
    share = call / (args.every * step + call)
    scaled_call = per_probe_sample * SCALE["probe_samples"]
    scaled = scaled_call / (SCALE["every"] * per_step_sample * SCALE["batch"] + scaled_call)
    print(f"\nLLaVA-1.5-7B widths, depth {depth[0]} vision + {depth[1]} LLM layers, {args.dtype} on "
          f"{args.device}, training {args.train}")
    print(f"training step ({args.batch} samples): {step:.3f} s   probe call ({args.probe_samples} samples): "
          f"{call:.3f} s = {call / step:.2f} training steps")
    print(f"share of the training time, probe every {args.every} steps: {100 * share:.2f} %")
    print(f"scaled to a {SCALE['probe_samples']}-sample probe every {SCALE['every']} steps of "
          f"{SCALE['batch']}: {scaled_call:.2f} s per call, {100 * scaled:.2f} % of the training time")
    worst = max(after - before for before, after in held)
    print(f"memory held around each probe call (bytes before -> after): "
          f"{', '.join(f'{b} -> {a}' for b, a in held)}")
    verdicts = Verdicts()
    print(verdicts.check("probe share of training time", scaled <= args.max_share,
                         f"{100 * scaled:.2f} %", f"<= {100 * args.max_share:.0f} %"))
    print(verdicts.check("memory back to its level after each call", worst <= 0,
                         f"{worst:+d} bytes at worst", "+0 bytes"))
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
