"""How fast `mm-align` answers: `--help` and `import mm_align.metrics` next to `import torch`,
measured side by side in one run (fresh interpreters, interleaved, medians).

    python scripts/bench_cli.py [--repeats 7]

Verdict: PASS when `mm-align --help` and `mm-align score --help` take under a quarter of
`python -c "import torch"` (they must not import torch at all), else MISS (exit code 1).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "mm-align --help": [sys.executable, "-m", "mm_align", "--help"],
    "mm-align score --help": [sys.executable, "-m", "mm_align", "score", "--help"],
    "import mm_align": [sys.executable, "-c", "import mm_align"],
    "import mm_align.metrics": [sys.executable, "-c", "import mm_align.metrics"],
}


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the file cache once
        _time(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits every command alike
        for name, argv in COMMANDS.items():
            times[name].append(_time(argv))
    median = {name: statistics.median(t) for name, t in times.items()}
    torch_s = median["python -c 'import torch'"]
    print(f"{'command':<28} {'median s':>9} {'vs import torch':>16}")
    for name, seconds in median.items():
        print(f"{name:<28} {seconds:>9.3f} {seconds / torch_s:>15.2f}x")
    worst = max(median["mm-align --help"], median["mm-align score --help"]) / torch_s
    verdict = "PASS" if worst < 0.25 else "MISS"
    print(f"{verdict}: --help takes {worst:.2f}x the time of importing torch (goal < 0.25x)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
