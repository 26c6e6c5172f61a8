"""What every benchmark shares: pinned and printed thread counts, interleaved timing with
medians, the old spectral path to compare against, and verdict lines.

Timings on a shared machine are noisy: every comparison runs its contenders in turn, round
after round (interleaved), so that other load hits them alike, and reports medians. On the CPU
the default clock is the process's CPU time (all its threads), which a descheduled process
does not accumulate: on an oversubscribed machine wall time measures the neighbours. It is
conservative for small operations (BLAS threads that spin between calls count as busy).
With CUDA the clock is wall time, GPU work waited for.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch

__all__ = ["Verdicts", "clock", "interleaved", "old_spectrum", "pin_threads", "set_clock", "sync"]


def pin_threads(threads: int | None) -> str:
    """Pin torch's and the BLAS/OpenMP pools' threads to ``threads`` (default: the CPUs this
    process may use) and describe them in one line."""
    from threadpoolctl import threadpool_info, threadpool_limits

    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    threadpool_limits(n)
    pools = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info())
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    cpus = len(os.sched_getaffinity(0))
    warn = ""
    if n > 1 and os.getloadavg()[0] > cpus:
        # Threads that wait at a barrier for a descheduled sibling spin: time then measures
        # the neighbours, on either clock.
        warn = (f"\nWARNING: the machine is oversubscribed (load {os.getloadavg()[0]:.1f} on {cpus} "
                "CPUs): multi-threaded timings are unreliable; use --threads 1")
    return (f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads, "
            f"{torch.get_num_interop_threads()} inter-op; numpy/BLAS pools: {pools or 'none'}; "
            f"{len(os.sched_getaffinity(0))} CPUs usable ({platform.processor() or platform.machine()}), "
            f"load average {os.getloadavg()[0]:.2f}; {device}{warn}")


_CLOCK = {"name": "wall" if torch.cuda.is_available() else "cpu"}


def set_clock(name: str | None) -> str:
    """Choose ``"cpu"`` (process CPU time) or ``"wall"``; None keeps the default. Returns a
    line that says which clock the figures use."""
    if name:
        _CLOCK["name"] = name
    if _CLOCK["name"] == "cpu":
        return "clock: process CPU time (all threads), robust to other load on a shared machine"
    return "clock: wall time (GPU work waited for)"


def clock() -> float:
    """Seconds on the chosen clock."""
    return time.process_time() if _CLOCK["name"] == "cpu" else time.perf_counter()


def sync() -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(contenders: Mapping[str, Callable[[], object]], repeats: int,
                warmup: int = 1) -> dict[str, float]:
    """Median seconds of each contender over ``repeats`` rounds, run in turn every round."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            sync()
            t0 = clock()
            fn()
            sync()
            times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def old_spectrum(R: torch.Tensor) -> torch.Tensor:
    """The spectrum as mm-align computed it before the shared and one-triangle Gram products
    (commit f0b06ac): float64 unit rows, the full smaller Gram ``Z Z^T`` or ``Z^T Z``,
    ``eigvalsh`` on R's device. The baseline the faster paths are measured against."""
    X = R.detach().to(torch.float64)
    Xc = X - X.mean(dim=0, keepdim=True)
    Z = Xc / torch.linalg.vector_norm(Xc, dim=1, keepdim=True)
    n, d = Z.shape
    gram = Z @ Z.T if n <= d else Z.T @ Z
    eig = torch.linalg.eigvalsh(gram / n).clamp_min(0.0).flip(0)
    return eig / eig.sum()


class Verdicts:
    """Collects PASS/MISS lines; :meth:`exit_code` is 1 if any claimed target was missed."""

    def __init__(self) -> None:
        self.missed: list[str] = []

    def check(self, what: str, ok: bool, figure: str, target: str) -> str:
        if not ok:
            self.missed.append(what)
        return f"{'PASS' if ok else 'MISS'}  {what}: {figure} (target {target})"

    def exit_code(self) -> int:
        print(f"\nverdict: {'MISS (' + ', '.join(self.missed) + ')' if self.missed else 'PASS'}")
        return 1 if self.missed else 0
