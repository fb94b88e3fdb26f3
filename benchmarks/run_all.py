"""`make bench`: the quick benchmarks, one after another, each with its default arguments.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--list]

Each is a script in this folder, run as its own process (its output streams through); the summary
gives each one's wall time and exit status, and the exit code is non-zero when any failed. The
long benchmarks (full-catalog embedding, fine-tuning, 1M-5M ANN, the web-app load test) are left
out: their own docstrings give their commands and the docs record their results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> what it measures; all run offline on the shared data, minutes each on 2 cores
QUICK = {
    "encoders_throughput": "images/s and texts/s of every encoder family (tiny checkpoints + the two offline models)",
    "index_search": "exact search latency at 40k and 1M synthetic vectors, numpy and faiss baselines",
    "sales_synthetic": "image vs metadata paired test on a synthetic sales target (300 items), null false-positive rate",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(QUICK), help="run these benchmarks only")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, what in QUICK.items():
            print(f"{name}: {what}")
        return 0
    results = []
    for name in args.only or list(QUICK):
        print(f"== {name}: {QUICK[name]}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=False).returncode
        results.append((name, rc, time.perf_counter() - t0))
    print("\n| benchmark | status | wall s |\n|---|---|---:|")
    for name, rc, secs in results:
        print(f"| {name} | {'ok' if rc == 0 else f'failed (exit {rc})'} | {secs:.0f} |")
    return int(any(rc for _, rc, _ in results))


if __name__ == "__main__":
    sys.exit(main())
