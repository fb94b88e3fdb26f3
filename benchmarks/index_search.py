"""Exact search latency at 40k and 1M synthetic unit vectors, and the faiss BLAS-threshold effect.

Baselines run in the same process: numpy matmul + argpartition, and faiss with its default
`distance_compute_blas_threshold` (20). Prints a markdown table.

    .venv/bin/python benchmarks/index_search.py [--sizes 40000 1000000] [--dim 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(fn, repeats: int) -> np.ndarray:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def numpy_topk(base: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sc = q @ base.T
    return np.argpartition(-sc, k, axis=1)[:, :k]


def main() -> None:
    import faiss

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[40_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}, dim {args.dim}\n")
    print("| n | what | single query p50 / p95 (ms) | 100 queries p50 (ms) |")
    print("|---|---|---|---|")
    for n in args.sizes:
        bench_size(n, args.dim, args.repeats)


def bench_size(n: int, dim: int, repeats: int) -> None:
    import faiss

    from fashionlens.index.exact import BLAS_THRESHOLD, ExactIndex

    base = unit(n, dim, 0)
    q1, q100 = unit(1, dim, 1), unit(100, dim, 2)
    t = time.perf_counter()
    index = ExactIndex(base, np.arange(n).astype(str))
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        build = time.perf_counter() - t
    few = max(3, repeats // 5)
    rows = []
    for label, thr in (("faiss, default threshold 20", 20), (f"faiss, threshold {BLAS_THRESHOLD} (ours)", BLAS_THRESHOLD),
                       ("faiss, threshold 1000 (never BLAS)", 1000)):
        faiss.cvar.distance_compute_blas_threshold = thr
        rows.append((label, timed(lambda: faiss.knn(q1, base, 10, metric=faiss.METRIC_INNER_PRODUCT), repeats),
                     timed(lambda: faiss.knn(q100, base, 10, metric=faiss.METRIC_INNER_PRODUCT), few)))
    rows.append(("numpy matmul + argpartition", timed(lambda: numpy_topk(base, q1, 10), repeats),
                 timed(lambda: numpy_topk(base, q100, 10), few)))
    rows.append(("ExactIndex.search (what fashionlens runs)", timed(lambda: index.search(q1, 10), repeats),
                 timed(lambda: index.search(q100, 10), few)))
    for label, s, b in rows:
        print(f"| {n:,} | {label} | {np.percentile(s, 50):.1f} / {np.percentile(s, 95):.1f} | {np.percentile(b, 50):.1f} |")
    print(f"| {n:,} | index build + save | {build * 1000:.0f} ms total | |", flush=True)

if __name__ == "__main__":
    main()
