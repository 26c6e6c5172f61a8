"""Benchmark: a projector sweep (`mm-align sweep --projector ...`) against scoring each
projector with its own `mm-align score --projector` run, side by side in one run.

Random models with the real widths of LLaVA-1.5-7B and Qwen2.5-VL-7B (scripts/real_widths.py)
at ``--depth`` (vision layers, LLM layers; default 2,1), saved as checkpoints; ``--n``
projector files (the model's own connector plus seeded noise). Both contenders score the same
``--limit`` samples of data/sample from the saved checkpoint, interleaved over ``--repeats``
rounds (medians); the sweep starts each round with an empty feature cache, so it pays the
vision tower once. Global forward hooks count the vision tower's calls and the time spent in
it and in the LLM's decoder layers, which extrapolates both contenders to the published
depth (time per layer x real layers + the time outside them), and projects the ratio to a
sweep of ``--project`` samples (default 1000), where the replay check's one extra LLM batch
no longer weighs.

Verdicts (exit 1 on a MISS): the sweep runs the vision tower exactly N times fewer; the sweep
takes less time than the separate runs. The saving at the real depth is printed: it is the
vision tower's share of each member's forward (small for LLaVA-1.5, whose LLM dominates; about
a quarter for Qwen2.5-VL at 448 px) plus N-1 model loads.

    python scripts/bench_sweep.py [--models llava-1.5-7b,qwen2.5-vl-7b] [--n 3] [--limit 4]
        [--depth 2,1|real] [--repeats 1] [--threads N] [--device cuda --dtype bfloat16]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Verdicts, clock, pin_threads, set_clock, sync
from real_widths import REAL, build

DATA = Path(__file__).resolve().parents[1] / "data" / "sample"


@contextmanager
def module_time(classes: dict[str, type]) -> Iterator[dict[str, float]]:
    """Seconds spent in, and calls of, modules of each class (global hooks: they see the
    models the pipeline loads itself). Keys: NAME (seconds) and NAME_calls."""
    totals: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}
    names = {cls: name for name, cls in classes.items()}

    def enter(module, _args):
        if type(module) in names:
            sync()
            started[id(module)] = clock()

    def leave(module, _args, _out):
        if type(module) in names:
            sync()
            totals[names[type(module)]] += clock() - started.pop(id(module))
            totals[names[type(module)] + "_calls"] += 1

    pre = torch.nn.modules.module.register_module_forward_pre_hook(enter)
    post = torch.nn.modules.module.register_module_forward_hook(leave)
    try:
        yield totals
    finally:
        pre.remove()
        post.remove()


def _checkpoint(name: str, root: Path, depth: tuple[int, int], n: int, args) -> tuple[Path, list[Path], dict]:
    """Save a random real-width model and ``n`` projector files; return them and the module
    classes to time (vision tower, LLM decoder layer)."""
    from safetensors.torch import save_file

    adapter = build(name, root, depth, args.device, getattr(torch, args.dtype))
    path = root / name
    adapter.model.save_pretrained(path)
    adapter.processor.save_pretrained(path)
    state = adapter.projector.state_dict()
    gen = torch.Generator().manual_seed(0)
    projectors = []
    for i in range(n):
        file = root / f"{name}-proj{i}.safetensors"
        save_file({k: (v.float().cpu() + 0.01 * i * torch.randn(v.shape, generator=gen)).to(v.dtype).contiguous()
                   for k, v in state.items()}, str(file))
        projectors.append(file)
    inner = adapter.model.model
    tower = inner.visual if hasattr(inner, "visual") else inner.vision_tower
    classes = {"vision": type(tower), "llm": type(adapter.language_model.layers[0])}
    return path, projectors, classes


def _contenders(path: Path, projectors: list[Path], root: Path, args) -> dict:
    import mm_align

    run = {"limit": args.limit, "batch_size": args.batch, "n_boot": 10, "progress": False,
           "device": args.device, "dtype": args.dtype}

    def separate() -> None:
        shutil.rmtree(root / "alone", ignore_errors=True)
        for file in projectors:
            mm_align.score(path, DATA, root / "alone" / file.stem, projector=str(file), **run)

    def sweep() -> None:
        shutil.rmtree(root / "sweep", ignore_errors=True)  # the feature cache with it
        mm_align.sweep(path, DATA, root / "sweep", projectors=projectors, **run)

    return {"separate": separate, "sweep": sweep}


def _extrapolate(t: dict[str, float], depth: tuple[int, int], real: tuple[int, int]) -> float:
    outside = t["total"] - t["vision"] - t["llm"]
    return outside + t["vision"] / depth[0] * real[0] + t["llm"] / depth[1] * real[1]


def _projected(sep: dict[str, float], depth: tuple[int, int], real: tuple[int, int], args) -> float:
    """sweep / separate at the real depth for a sweep of ``args.project`` samples, from the
    separate runs' per-batch costs: the sweep saves the tower on N-1 of N members and pays one
    more LLM batch (the replay check); the rest (loading, processing, metrics) is counted
    per batch for both, which leaves out the N-1 model loads the sweep also saves."""
    calls = sep["vision_calls"]  # = N x batches of the measured run
    vision = sep["vision"] / calls / depth[0] * real[0]
    llm = sep["llm"] / calls / depth[1] * real[1]
    other = (sep["total"] - sep["vision"] - sep["llm"]) / calls
    batches = -(-args.project // args.batch)
    separate = args.n * batches * (vision + llm + other)
    return (args.n * batches * (llm + other) + batches * vision + llm) / separate


def bench_one(name: str, args, verdicts: Verdicts) -> None:
    spec = REAL[name]
    depth = spec.real_depth if args.depth == "real" else tuple(int(v) for v in args.depth.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path, projectors, classes = _checkpoint(name, root, depth, args.n, args)
        rounds: dict[str, list[dict[str, float]]] = {"separate": [], "sweep": []}
        contenders = _contenders(path, projectors, root, args)
        for _ in range(args.repeats):
            for label, fn in contenders.items():
                with module_time(classes) as t:
                    start = clock()
                    fn()
                    sync()
                    t["total"] = clock() - start
                rounds[label].append(dict(t))
    med = {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in rounds.items()}
    sep, swp = med["separate"], med["sweep"]
    print(f"\n{name}: depth {depth[0]} vision + {depth[1]} LLM layers (real {spec.real_depth[0]} + "
          f"{spec.real_depth[1]}), {args.n} projectors, {args.limit} samples, batch {args.batch}, "
          f"{args.dtype} on {args.device}")
    print(f"   {'':<34} {'separate runs':>14} {'sweep':>10} {'sweep/separate':>15}")
    for key, label in (("total", "time (s)"), ("vision", "in the vision tower (s)"),
                       ("llm", "in the LLM layers (s)"), ("vision_calls", "vision tower calls")):
        print(f"   {label:<34} {sep[key]:>14.2f} {swp[key]:>10.2f} {swp[key] / sep[key]:>14.3f}x")
    real_sep, real_swp = (_extrapolate(m, depth, spec.real_depth) for m in (sep, swp))
    print(f"   {'extrapolated to the real depth (s)':<34} {real_sep:>14.1f} {real_swp:>10.1f} "
          f"{real_swp / real_sep:>14.3f}x")
    projected = _projected(sep, depth, spec.real_depth, args)
    print(f"   {f'projected, {args.project} samples, real depth':<34} {'':>14} {'':>10} {projected:>14.3f}x")
    fewer = sep["vision_calls"] / swp["vision_calls"]
    print("   " + verdicts.check(f"{name} vision tower calls", fewer == args.n, f"{fewer:.2f}x fewer",
                                 f"exactly {args.n}x"))
    print("   " + verdicts.check(f"{name} sweep time", swp["total"] < sep["total"],
                                 f"{swp['total'] / sep['total']:.3f}x of the separate runs", "< 1x"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llava-1.5-7b,qwen2.5-vl-7b")
    parser.add_argument("--n", type=int, default=3, help="projector files")
    parser.add_argument("--limit", type=int, default=4, help="samples of data/sample")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--depth", default="2,1", help="vision layers,LLM layers; 'real': published")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--project", type=int, default=1000,
                        help="samples of the sweep the saving is projected to (real depth)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--clock", choices=["cpu", "wall"])
    args = parser.parse_args()
    print(pin_threads(args.threads))
    print(set_clock(args.clock))
    warnings.filterwarnings("ignore")
    verdicts = Verdicts()
    for name in args.models.split(","):
        bench_one(name, args, verdicts)
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
