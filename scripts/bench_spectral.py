"""Benchmark: mm-align's spectra against the official Diff-eRank procedure and against its own
previous path, side by side, at the widths of real 7B VLMs.

1. One matrix (576 x 4096, LLaVA-1.5-7B image tokens): ``mm_align.erank`` vs the official code
   (d x d covariance, ``torch.svd``) in float32 as shipped and in float64 (the reference).
2. One sample's five stages (vision, projector, image, text, joint) at real widths:
   ``reduce_sample`` (one-triangle Gram products, image and joint from one shared product, one
   eigen-solver call) vs the previous path (full Gram per stage, commit f0b06ac), and the
   float32-Gram option; entropies compared with the previous float64 path.
3. Where the time goes: full vs one-triangle Gram; separate vs shared image + joint Grams;
   the eigen-solver.
4. With a CUDA device: a batch of 8 samples in bfloat16 on the GPU, eigen-solver on the GPU
   (batched) vs on the CPU in float64.

Every comparison is interleaved (contenders in turn, round after round) and reports medians.
Prints PASS/MISS per claimed target and exits 1 on any MISS.

Usage: python scripts/bench_spectral.py [--repeats 5] [--threads N] [--no-official]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Verdicts, clock, interleaved, old_spectrum, pin_threads, set_clock

from mm_align import erank
from mm_align.metrics import normalized_rows, spectral_entropy
from mm_align.metrics.gram import lower_gram, spectra_of_grams
from mm_align.metrics.nested import nested_grams
from mm_align.metrics.spectral import gram_of_rows
from mm_align.pipeline.reduce import reduce_batch, reduce_sample

# (vision rows, vision width, image tokens, text tokens, LLM width) of one sample.
SAMPLES = {
    "LLaVA-1.5-7B, 336 px (576 image tokens)": (576, 1024, 576, 100, 4096),
    "LLaVA width, 1024 image tokens": (1024, 1024, 1024, 100, 4096),
    "Qwen2.5-VL-7B, 448 px (256 image tokens)": (1024, 1280, 256, 100, 3584),
}
EXACT, FP32_TOL, OFFICIAL_SPEEDUP, SAMPLE_SPEEDUP = 1e-9, 1e-6, 100.0, 1.3


def hidden_states_like(n: int, d: int, seed: int, offset: float = 0.0) -> torch.Tensor:
    """A low-rank-plus-noise matrix with a decaying spectrum, like LLM hidden states."""
    g = torch.Generator().manual_seed(seed)
    k = min(n, d, 256)
    basis = torch.randn(k, d, generator=g)
    coeff = torch.randn(n, k, generator=g) * torch.logspace(1, -1, k)
    return coeff @ basis + 0.05 * torch.randn(n, d, generator=g) + offset


def official_erank(R: torch.Tensor) -> float:
    """The official repository's computation, in R's dtype."""
    R = R - R.mean(dim=0)
    R = R / torch.norm(R, p=2, dim=1, keepdim=True)
    Z = R.T @ R / R.shape[0]
    s = torch.svd(Z / torch.trace(Z))[1]
    return math.exp(float(-(s * torch.log(s)).nansum()))


class SampleRep(dict):
    """A Representation-like sample: image rows first in the joint rows, as the plain prompt
    puts them, with the masks that say so."""

    def __init__(self, shape: tuple[int, int, int, int, int], seed: int, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        n_vision, d_vision, n_image, n_text, d = shape
        joint = torch.cat([hidden_states_like(n_image, d, seed, 1.0),
                           hidden_states_like(n_text, d, seed + 1, -1.0)])
        image = torch.arange(len(joint)) < n_image
        self.masks = {"image": image, "joint": torch.ones_like(image)}
        states = {"vision": hidden_states_like(n_vision, d_vision, seed + 2),
                  "projector": hidden_states_like(n_image, d, seed + 3),
                  "image": joint[image], "text": hidden_states_like(n_text, d, seed + 4),
                  "joint": joint}
        super().__init__({k: v.to(device, dtype) for k, v in states.items()})


def old_reduce(rep: SampleRep) -> dict[str, float]:
    return {stage: spectral_entropy(old_spectrum(states)) for stage, states in rep.items()}


def fp32_reduce(rep: SampleRep) -> dict[str, float]:
    """The float32-Gram option through the metrics API (reduce_sample stays float64)."""
    f32 = torch.float32
    subset = rep.masks["image"]
    grams = [gram_of_rows(normalized_rows(rep[s]), f32) for s in ("vision", "projector", "text")]
    grams += list(nested_grams(rep["joint"], subset, f32))
    spectra = spectra_of_grams(grams)
    return {s: spectral_entropy(p) for s, p in zip(("vision", "projector", "text", "joint", "image"), spectra)}


def max_rel(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) / max(1.0, abs(b[k])) for k in b)


def section_official(verdicts: Verdicts, repeats: int) -> None:
    R = hidden_states_like(576, 4096, seed=0)
    print("\n1. one 576 x 4096 matrix: erank vs the official procedure (official timed once each)")
    t0 = clock()
    e32 = official_erank(R)
    t32 = clock() - t0
    t0 = clock()
    e64 = official_erank(R.double())
    t64 = clock() - t0
    tm = interleaved({"erank": lambda: erank(R)}, repeats)["erank"]
    em = erank(R)
    print(f"   official f32 {t32:8.3f} s   official f64 {t64:8.3f} s   erank {tm:8.4f} s")
    print(f"   rel diff to official f64: official f32 {abs(e32 - e64) / e64:.1e}, "
          f"erank {abs(em - e64) / e64:.1e}")
    print("   " + verdicts.check("erank vs official f32 speed-up", t32 / tm >= OFFICIAL_SPEEDUP,
                                 f"{t32 / tm:.0f}x", f">= {OFFICIAL_SPEEDUP:g}x"))
    print("   " + verdicts.check("erank exact", abs(em - e64) / e64 <= EXACT,
                                 f"{abs(em - e64) / e64:.1e}", f"<= {EXACT:g}"))


def _sample_row(name: str, rep: SampleRep, repeats: int, verdicts: Verdicts, first: bool) -> None:
    t = interleaved({"before": lambda: old_reduce(rep), "after": lambda: reduce_sample(rep),
                     "f32": lambda: fp32_reduce(rep)}, repeats)
    ref = old_reduce(rep)
    got = {s: reduce_sample(rep)[f"entropy_{s}"] for s in ref}
    diff, diff32 = max_rel(got, ref), max_rel(fp32_reduce(rep), ref)
    speedup = t["before"] / t["after"]
    print(f"   {name:<42} {t['before']:>9.4f} {t['after']:>9.4f} {t['f32']:>10.4f} "
          f"{speedup:>8.2f}x {diff:>9.1e} {diff32:>12.1e}")
    print("   " + verdicts.check(f"exact ({name})", diff <= EXACT, f"{diff:.1e}", f"<= {EXACT:g}"))
    print("   " + verdicts.check(f"float32 Gram tolerance ({name})", diff32 <= FP32_TOL,
                                 f"{diff32:.1e}", f"<= {FP32_TOL:g}"))
    if first:
        print("   " + verdicts.check("five stages faster than before", speedup >= SAMPLE_SPEEDUP,
                                     f"{speedup:.2f}x", f">= {SAMPLE_SPEEDUP:g}x"))


def section_samples(verdicts: Verdicts, repeats: int) -> None:
    print(f"\n2. one sample's five stages, median of {repeats} interleaved rounds")
    print(f"   {'sample':<42} {'before s':>9} {'after s':>9} {'f32 Gram s':>10} "
          f"{'speed-up':>9} {'rel diff':>9} {'f32 rel diff':>12}")
    for i, (name, shape) in enumerate(SAMPLES.items()):
        _sample_row(name, SampleRep(shape, seed=10 * i), repeats, verdicts, first=i == 0)


def _parts_row(n_image: int, repeats: int) -> None:
    X = hidden_states_like(n_image + 100, 4096, seed=n_image).double()
    subset = torch.arange(len(X)) < n_image
    Z = normalized_rows(X)
    g = lower_gram(Z)
    t = interleaved({
        "full": lambda: Z @ Z.T,
        "lower": lambda: lower_gram(Z),
        "two": lambda: (gram_of_rows(normalized_rows(X)), gram_of_rows(normalized_rows(X[subset]))),
        "shared": lambda: nested_grams(X, subset),
        "eig": lambda: torch.linalg.eigvalsh(g),
    }, repeats)
    print(f"   {f'{n_image} + 100':<18} {t['full']:>10.4f} {t['lower']:>10.4f} {t['two']:>9.4f} "
          f"{t['shared']:>9.4f} {t['eig']:>9.4f}   (1-triangle {t['full'] / t['lower']:.2f}x, "
          f"shared {t['two'] / t['shared']:.2f}x)")


def section_parts(repeats: int) -> None:
    print(f"\n3. where the time goes (LLM width 4096), median of {repeats} interleaved rounds")
    print(f"   {'image + text rows':<18} {'full Gram':>10} {'1-triangle':>10} {'2 Grams':>9} "
          f"{'shared':>9} {'eigvalsh':>9}")
    for n_image in (576, 1024):
        _parts_row(n_image, repeats)


def section_gpu(verdicts: Verdicts, repeats: int) -> None:
    if not torch.cuda.is_available():
        print("\n4. GPU: skipped (no CUDA device)")
        return
    shape = SAMPLES["LLaVA-1.5-7B, 336 px (576 image tokens)"]
    reps = [SampleRep(shape, seed=100 + i, device="cuda", dtype=torch.bfloat16) for i in range(8)]
    t = interleaved({
        "before (GPU, per stage)": lambda: [old_reduce(r) for r in reps],
        "after, eigvalsh on GPU (batched)": lambda: reduce_batch(reps),
        "after, eigvalsh on CPU float64": lambda: reduce_batch(reps, device="cpu"),
    }, repeats)
    print(f"\n4. GPU ({torch.cuda.get_device_name()}): 8 samples in bfloat16, "
          f"median of {repeats} interleaved rounds")
    for name, s in t.items():
        print(f"   {name:<36} {s:>8.4f} s  ({1000 * s / 8:.1f} ms/sample)")
    gpu, cpu = reduce_batch(reps), reduce_batch(reps, device="cpu")
    ref = [old_reduce(r) for r in reps]
    diff = max(max_rel({s: g[f"entropy_{s}"] for s in r}, r) for g, r in zip(gpu, ref))
    diff_cpu = max(max_rel({s: c[f"entropy_{s}"] for s in r}, r) for c, r in zip(cpu, ref))
    print("   " + verdicts.check("GPU eigvalsh exact", diff <= EXACT, f"{diff:.1e}", f"<= {EXACT:g}"))
    print("   " + verdicts.check("CPU eigvalsh exact", diff_cpu <= EXACT, f"{diff_cpu:.1e}", f"<= {EXACT:g}"))
    best = min(t["after, eigvalsh on GPU (batched)"], t["after, eigvalsh on CPU float64"])
    print(f"   faster here: {'GPU' if best == t['after, eigvalsh on GPU (batched)'] else 'CPU'} "
          "eigen-solver (reduce_batch(device=...) chooses; default: where the states are)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all usable)")
    parser.add_argument("--no-official", action="store_true", help="skip section 1 (slow SVDs)")
    parser.add_argument("--clock", choices=["cpu", "wall"],
                        help="timer (default: CPU time without CUDA, else wall)")
    args = parser.parse_args()
    print(pin_threads(args.threads))
    print(set_clock(args.clock))
    verdicts = Verdicts()
    if not args.no_official:
        section_official(verdicts, args.repeats)
    section_samples(verdicts, args.repeats)
    section_parts(args.repeats)
    section_gpu(verdicts, args.repeats)
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
