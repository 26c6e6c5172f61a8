"""Benchmark: mm_align.erank against the official Diff-eRank procedure, side by side.

The official code builds the d x d covariance of the normalised rows and runs torch.svd on
it in the model's dtype. We time it as shipped (float32) and in float64 (the accurate
reference), and mm_align.erank (float64 eigen-solver on the smaller Gram matrix), on the
same matrices, and print times, speed-ups and relative differences to the float64 reference.

Usage: python scripts/bench_spectral.py [--repeats 3] [--shapes 576x4096,1024x3584,4096x1024]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from mm_align import erank


def official_erank(R: torch.Tensor) -> float:
    """The official repository's computation, in R's dtype."""
    R = R - R.mean(dim=0)
    R = R / torch.norm(R, p=2, dim=1, keepdim=True)
    Z = R.T @ R / R.shape[0]
    s = torch.svd(Z / torch.trace(Z))[1]
    return math.exp(float(-(s * torch.log(s)).nansum()))


def timed(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(median seconds, value) over `repeats` calls."""
    times, value = [], math.nan
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def hidden_states_like(n: int, d: int, seed: int) -> torch.Tensor:
    """A low-rank-plus-noise matrix with a decaying spectrum, like LLM hidden states."""
    g = torch.Generator().manual_seed(seed)
    k = min(n, d, 256)
    basis = torch.randn(k, d, generator=g)
    coeff = torch.randn(n, k, generator=g) * torch.logspace(1, -1, k)
    return coeff @ basis + 0.05 * torch.randn(n, d, generator=g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method (median)")
    parser.add_argument("--shapes", default="576x4096,1024x3584,4096x1024")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    header = (
        f"{'N x d':>11} | {'official f32 s':>14} {'official f64 s':>14} {'erank s':>9} | "
        f"{'x vs f32':>9} {'x vs f64':>9} | {'rel diff f32':>12} {'rel diff erank':>14}"
    )
    print(header)
    print("-" * len(header))
    for i, (n, d) in enumerate(shapes):
        R = hidden_states_like(n, d, seed=i)
        t32, e32 = timed(lambda: official_erank(R), args.repeats)
        t64, e64 = timed(lambda: official_erank(R.double()), args.repeats)
        erank(R)  # warm-up: first eigvalsh call loads LAPACK paths
        tm, em = timed(lambda: erank(R), args.repeats)
        print(
            f"{n:>5}x{d:<5} | {t32:>14.4f} {t64:>14.4f} {tm:>9.4f} | "
            f"{t32 / tm:>9.1f} {t64 / tm:>9.1f} | {abs(e32 - e64) / e64:>12.2e} "
            f"{abs(em - e64) / e64:>14.2e}"
        )
    print("\ntarget: erank >= 100x faster than official f32 at 576x4096, rel diff <= 1e-9")


if __name__ == "__main__":
    main()
