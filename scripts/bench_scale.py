"""Data sets at scale: 100,000 pairs built from the bundled photos (each caption varied, so
every pair is distinct) as a JSONL manifest, parquet files and WebDataset shards.

    python scripts/bench_scale.py [--n 100000] [--read 5000] [--work DIR]

Measured (wall clock; the data are written once into --work, default a temporary folder):

* reading throughput without a model: pairs/s of the pass that counts the pairs and
  computes their fingerprint (bytes read and hashed, nothing decoded) over all N pairs, and
  of loading pairs (image decoded to RGB, text checked) over the first --read pairs;
* peak RSS of a process that opens each layout, fingerprints it, selects every pair and
  iterates them (ids and texts checked, the first 200 images decoded), at 10,000 and at N
  pairs: the growth must stay under 50 MB (memory flat in the number of pairs);
* a run of N results: the records of a real tiny-model run (``mm-align tiny qwen2_5_vl``,
  200 pairs scored) repeated to N with fresh ids, then ``summarize`` (the summary with its
  1000-replicate bootstrap intervals) and ``write_report``: report.html under 5 MB and built
  in under 30 s.

Every goal prints PASS or MISS; the exit code is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_common import Verdicts  # noqa: E402

SAMPLE = REPO / "data" / "sample"
SHARD = 10_000  # pairs per WebDataset shard and per parquet file
SMALL = 10_000
RSS_GOAL_MB, REPORT_MB, REPORT_S = 50, 5, 30


def _photos() -> list[tuple[str, bytes, str]]:
    meta = [json.loads(line) for line in (SAMPLE / "metadata.jsonl").read_text().splitlines() if line]
    return [(m["file_name"], (SAMPLE / m["file_name"]).read_bytes(), m["text"]) for m in meta]


def _pair(photos: list, i: int) -> tuple[str, bytes, str]:
    name, data, text = photos[i % len(photos)]
    return name, data, f"{text} (view {i})"


def write_data(root: Path, n: int) -> dict[str, dict[int, Path]]:
    """Layout -> {number of pairs: path}: a manifest, parquet files and shards of ``n``
    pairs, and of their first SMALL pairs (the first file, the first shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    photos = _photos()
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name, data, _ in photos:
        (images / name).write_bytes(data)
    paths: dict[str, dict[int, Path]] = {"manifest": {}, "parquet": {}, "webdataset": {}}
    for size in (SMALL, n):
        paths["manifest"][size] = root / f"manifest-{size}.jsonl"
        with open(paths["manifest"][size], "w", encoding="utf-8") as f:
            for i in range(size):
                name, _, text = _pair(photos, i)
                f.write(json.dumps({"image": f"images/{name}", "text": text}) + "\n")
    for kind in ("parquet", "webdataset"):
        (root / kind).mkdir(exist_ok=True)
        paths[kind] = {SMALL: root / kind / ("part-00000.parquet" if kind == "parquet" else "shard-00000.tar"),
                       n: root / kind}
    for start in range(0, n, SHARD):
        pairs = [_pair(photos, i) for i in range(start, min(n, start + SHARD))]
        part = start // SHARD
        table = pa.table({"image": [{"bytes": d, "path": name} for name, d, _ in pairs],
                          "caption": [t for *_, t in pairs]})
        pq.write_table(table, root / "parquet" / f"part-{part:05d}.parquet", row_group_size=1000)
        with tarfile.open(root / "webdataset" / f"shard-{part:05d}.tar", "w") as tar:
            for i, (_, data, text) in enumerate(pairs, start=start):
                for ext, body in (("jpg", data), ("txt", text.encode())):
                    info = tarfile.TarInfo(f"{i:08d}.{ext}")
                    info.size = len(body)
                    tar.addfile(info, io.BytesIO(body))
    return paths


# VmHWM, not getrusage: ru_maxrss survives fork + exec, so a child would report its parent's peak.
_CHILD = """
import json, re, sys
from mm_align.data import open_dataset
from mm_align.pipeline.selection import select
source = open_dataset(sys.argv[1])
source.fingerprint()
n = 0
for sample in select(source):
    sample.check_text()
    if n < 200:
        sample.load_image()
    n += 1
hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
print(json.dumps({"n": n, "rss_mb": int(hwm.group(1)) / 1024}))
"""


def peak_rss(path: Path) -> dict:
    """Peak RSS (MB) of a fresh process reading ``path`` (see the module doc)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], check=True, capture_output=True,
                         text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(path: Path, n_read: int) -> tuple[float, float, int]:
    """(pairs/s of the fingerprint pass over every pair, pairs/s loading the first
    ``n_read``, number of pairs)."""
    import itertools

    from mm_align.data import open_dataset

    start = time.perf_counter()
    source = open_dataset(path)
    source.fingerprint()
    n = len(source)
    scan = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for sample in itertools.islice(source, n_read):
        sample.load()
    return scan, n_read / (time.perf_counter() - start), n


def report_at_scale(root: Path, n: int, manifest: Path) -> tuple[float, float, float]:
    """(summary seconds, report seconds, report MB) of a run of ``n`` results."""
    import mm_align
    from mm_align.cli import main as cli
    from mm_align.pipeline.summary import summarize

    tiny, run = root / "tiny", root / "run"
    if not tiny.exists():
        cli(["tiny", "qwen2_5_vl", str(tiny), "--seed", "0"])
    mm_align.score(str(tiny), str(manifest), run, limit=200, batch_size=8, progress=False, n_boot=20)
    seed_records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line]
    summary = json.loads((run / "summary.json").read_text())
    records = [{**seed_records[i % len(seed_records)], "id": f"pair-{i:07d}", "index": i} for i in range(n)]
    with open(run / "results.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    start = time.perf_counter()
    summary = summarize(records, 0, summary["provenance"], n_boot=1000, seed=0)
    summary_s = time.perf_counter() - start
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    start = time.perf_counter()
    page = mm_align.write_report(run)
    return summary_s, time.perf_counter() - start, page.stat().st_size / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--read", type=int, default=5000, help="pairs decoded per layout for throughput")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        start = time.perf_counter()
        paths = write_data(root, args.n)
        print(f"{args.n:,} pairs written as 3 layouts in {time.perf_counter() - start:.0f} s ({root})")
        verdicts = Verdicts()
        print(f"\n{'layout':<11} {'fingerprint pass':>17} {'load (decode)':>14} {'RSS 10k':>8} "
              f"{'RSS ' + format(args.n, ','):>12} {'growth':>7}")
        lines = []
        for layout, sizes in paths.items():
            scan, load, n = throughput(sizes[args.n], args.read)
            small, large = peak_rss(sizes[SMALL]), peak_rss(sizes[args.n])
            assert n == large["n"] == args.n and small["n"] == SMALL
            growth = large["rss_mb"] - small["rss_mb"]
            print(f"{layout:<11} {scan:>12,.0f} p/s {load:>10,.0f} p/s {small['rss_mb']:>6.0f}MB "
                  f"{large['rss_mb']:>10.0f}MB {growth:>+6.0f}MB")
            lines.append(verdicts.check(f"{layout} memory", growth < RSS_GOAL_MB, f"{growth:+.0f} MB from "
                                        f"{SMALL:,} to {args.n:,} pairs", f"< +{RSS_GOAL_MB} MB"))
        summary_s, report_s, report_mb = report_at_scale(root, args.n, paths["manifest"][args.n])
        print(f"\nrun of {args.n:,} results: summary with bootstrap {summary_s:.1f} s, "
              f"report.html {report_mb:.1f} MB built in {report_s:.1f} s")
        lines.append(verdicts.check("report size", report_mb < REPORT_MB, f"{report_mb:.1f} MB", f"< {REPORT_MB} MB"))
        lines.append(verdicts.check("report time", report_s < REPORT_S, f"{report_s:.1f} s", f"< {REPORT_S} s"))
        print("\n" + "\n".join(lines))
        return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
