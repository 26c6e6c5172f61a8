"""Benchmark: `mm-align score` throughput, and whether its memory grows with the data set.

In ONE fresh process: build nothing but the adapter of a tiny checkpoint (random weights),
warm up with one short ``score()`` run (lazy imports, allocator pools, report machinery), then
score each data set size in turn (a manifest cycling through the bundled photos) and measure,
per run, relative to the steady state just before it:

- **RSS growth**: peak resident memory during the run (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``) minus the resident memory before the run;
- **Python heap peak**: ``tracemalloc``'s peak during a second run of the same size (tracing
  slows Python down, so throughput comes from the untraced run).

Memory must not grow with the data set (only scalars are kept per sample): the verdict compares
the largest size with the smallest and exits 1 on a MISS. ``--batch-sizes`` adds throughput at
several batch sizes on the largest data set.

Usage: python scripts/bench_score.py [--family qwen2_5_vl] [--sizes 10,100] [--batch-sizes 8]
       [--model PATH] [--device cpu] [--dtype float32] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
RSS_GROWTH_MB, HEAP_GROWTH_MB = 20.0, 5.0  # largest vs smallest data set

# Runs in the child: one process, warm-up, then every measured run; one JSON line out.
_CHILD = """
import gc, json, re, sys, time, tracemalloc, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {scripts!r})
from bench_common import pin_threads
print(pin_threads({threads}), file=sys.stderr)
from mm_align import load_vlm
from mm_align.pipeline import score

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

def hwm_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

def run(data, out, batch, traced=False):
    gc.collect()
    before = rss_mb()
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak RSS to the current RSS
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    summary = score(adapter, data, out, batch_size=batch, progress=False)
    seconds = time.perf_counter() - t0
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    tracemalloc.stop()
    return {{"n": summary["n_samples"], "seconds": seconds, "rss_before_mb": before,
             "rss_growth_mb": hwm_mb() - before, "heap_peak_mb": heap}}

adapter = load_vlm({model!r}, device={device!r}, dtype={dtype!r})
jobs = json.loads(sys.argv[1])
run(jobs["warm"], jobs["root"] + "/warm", {batch})
results = []
for n, data in jobs["sizes"]:
    r = run(data, jobs["root"] + f"/run-{{n}}", {batch})
    r["heap_peak_mb"] = run(data, jobs["root"] + f"/traced-{{n}}", {batch}, traced=True)["heap_peak_mb"]
    results.append(r)
rates = {{b: (lambda r: r["n"] / r["seconds"])(run(jobs["sizes"][-1][1], jobs["root"] + f"/b{{b}}", b))
         for b in jobs["batch_sizes"]}}
print(json.dumps({{"runs": results, "rates": rates}}))
"""


def cycled_manifest(path: Path, n: int) -> Path:
    """A JSONL manifest of n samples cycling through the bundled photos (distinct ids)."""
    rows = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines()]
    with path.open("w") as fh:
        for i in range(n):
            row = rows[i % len(rows)]
            fh.write(json.dumps({"id": f"{i}", "image": str(SAMPLE / row["file_name"]),
                                 "text": row["text"]}) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="qwen2_5_vl", choices=["qwen2_5_vl", "llava"])
    parser.add_argument("--model", help="an existing checkpoint instead of a tiny one")
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batch-sizes", default="", help="extra throughput runs, e.g. 1,8,32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all usable)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = Path(args.model) if args.model else root / "model"
        if not args.model:
            subprocess.run([sys.executable, "-m", "mm_align", "tiny", args.family, str(model)],
                           check=True, capture_output=True)
        jobs = {"root": tmp, "warm": str(cycled_manifest(root / "warm.jsonl", args.batch_size)),
                "sizes": [(n, str(cycled_manifest(root / f"data-{n}.jsonl", n))) for n in sizes],
                "batch_sizes": batch_sizes}
        code = _CHILD.format(scripts=str(Path(__file__).parent), threads=args.threads or None,
                             model=str(model), device=args.device, dtype=args.dtype,
                             batch=args.batch_size)
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(jobs)], capture_output=True, check=False,
                              text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if proc.returncode:
            sys.exit(proc.stderr)
    print(next((line for line in proc.stderr.splitlines() if line.startswith("torch ")), ""))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    label = args.model or f"tiny {args.family} (random weights)"
    print(f"{label}, batch size {args.batch_size}, {args.dtype} on {args.device}; one process, "
          "after a warm-up run; growth = peak during the run minus the steady state before it")
    print(f"{'samples':>8} {'seconds':>8} {'samples/s':>10} {'RSS before MB':>14} "
          f"{'RSS growth MB':>14} {'heap peak MB':>13}")
    for r in out["runs"]:
        print(f"{r['n']:>8} {r['seconds']:>8.2f} {r['n'] / r['seconds']:>10.1f} "
              f"{r['rss_before_mb']:>14.1f} {r['rss_growth_mb']:>14.1f} {r['heap_peak_mb']:>13.1f}")
    for b, rate in out["rates"].items():
        print(f"throughput at batch size {b:>3}: {rate:.2f} samples/s ({sizes[-1]} samples)")
    first, last = out["runs"][0], out["runs"][-1]
    d_rss = last["rss_growth_mb"] - first["rss_growth_mb"]
    d_heap = last["heap_peak_mb"] - first["heap_peak_mb"]
    ok = d_rss < RSS_GROWTH_MB and d_heap < HEAP_GROWTH_MB
    print(f"{'PASS' if ok else 'MISS'}  memory vs data set size, {first['n']} -> {last['n']} "
          f"samples: RSS growth {d_rss:+.1f} MB (target < {RSS_GROWTH_MB:g}), Python heap peak "
          f"{d_heap:+.1f} MB (target < {HEAP_GROWTH_MB:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
