"""Benchmark: `mm-align score` throughput and peak memory on 10 vs 200 samples.

Builds a tiny checkpoint (random weights) and a manifest that cycles through the bundled
photos, then scores 10 and 200 samples, each in a fresh process so that its peak resident
memory is its own. Memory must not grow with the data set: only scalars are kept.

Usage: python scripts/bench_score.py [--family qwen2_5_vl] [--sizes 10,200] [--batch-size 8]
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

# Runs in the child: load, score, report wall time and peak RSS of this process alone.
_CHILD = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from mm_align import load_vlm
from mm_align.pipeline import score
model, data, out, batch = sys.argv[1:5]
adapter = load_vlm(model)
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
summary = score(adapter, data, out, batch_size=int(batch), progress=False)
seconds = time.perf_counter() - t0
print(json.dumps({"n": summary["n_samples"], "seconds": seconds, "rss_loaded_mb": rss_loaded,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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


def run_child(model: Path, data: Path, out: Path, batch_size: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model), str(data), str(out), str(batch_size)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="qwen2_5_vl", choices=["qwen2_5_vl", "llava"])
    parser.add_argument("--sizes", default="10,200")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "model"
        subprocess.run([sys.executable, "-m", "mm_align", "tiny", args.family, str(model)],
                       check=True, capture_output=True)
        rows = []
        for n in sizes:
            data = cycled_manifest(root / f"data-{n}.jsonl", n)
            rows.append(run_child(model, data, root / f"run-{n}", args.batch_size))
    print(f"tiny {args.family}, batch size {args.batch_size}, CPU (random weights)")
    print(f"{'samples':>8} {'seconds':>9} {'samples/s':>10} {'RSS after load MB':>18} "
          f"{'peak RSS MB':>12} {'growth MB':>10}")
    for r in rows:
        print(f"{r['n']:>8} {r['seconds']:>9.2f} {r['n'] / r['seconds']:>10.1f} "
              f"{r['rss_loaded_mb']:>18.1f} {r['peak_rss_mb']:>12.1f} "
              f"{r['peak_rss_mb'] - r['rss_loaded_mb']:>10.1f}")
    first, last = rows[0], rows[-1]
    print(f"\npeak RSS {last['n']} vs {first['n']} samples: "
          f"{last['peak_rss_mb'] - first['peak_rss_mb']:+.1f} MB; throughput ratio "
          f"{(last['n'] / last['seconds']) / (first['n'] / first['seconds']):.2f}")


if __name__ == "__main__":
    main()
