"""ANN backends vs exact at 1M (and 5M) synthetic 256-d unit vectors: recall@10, latency, size, build time.

Synthetic data (no real catalog has 1M photos here): a two-level Gaussian mixture on the sphere,
1,000 coarse centres x 20 sub-centres plus isotropic noise, so that neighbourhoods have structure
like real embeddings (uniform random vectors have none and are the worst case for any ANN).
Queries are held-out points of the same mixture. Ground truth is `ExactIndex` on the same vectors.
Runs single-threaded (faiss + BLAS) because the machine is shared. Writes JSON lines to --out.

    .venv/bin/python benchmarks/scale_ann.py --n 1000000 --out /tmp/scale_1m.jsonl
    .venv/bin/python benchmarks/scale_ann.py --n 5000000 --backends exact ivfpq --out /tmp/scale_5m.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def mixture(n: int, dim: int, seed: int, chunk: int = 250_000) -> np.ndarray:
    """(n, dim) float32 unit vectors of the two-level mixture, generated chunk by chunk."""
    g = np.random.default_rng(1234)  # centres shared by base and queries
    coarse = g.standard_normal((1000, dim), dtype=np.float32)
    coarse /= np.linalg.norm(coarse, axis=1, keepdims=True)
    sub = g.standard_normal((1000, 20, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        c, j = rng.integers(0, 1000, m), rng.integers(0, 20, m)
        x = coarse[c] + sub[c, j] + rng.standard_normal((m, dim), dtype=np.float32) * np.float32(0.35 / np.sqrt(dim))
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)]))


CPU: dict[str, float] = {}  # CPU ms per query of the last latency_ms call (wall time suffers on a shared box)


def latency_ms(index, q: np.ndarray, k: int, single: int, **kw) -> tuple[float, float, np.ndarray]:
    """(wall ms per query one at a time, wall ms per query in one batch, batch result rows)."""
    t, c = time.perf_counter(), time.process_time()
    for r in q[:single]:
        index.search(r, k, **kw)
    CPU["cpu_ms_single"] = round((time.process_time() - c) / single * 1000, 2)
    wall_single = (time.perf_counter() - t) / single * 1000
    t, c = time.perf_counter(), time.process_time()
    _, rows = index.search(q, k, **kw)
    CPU["cpu_ms_batch"] = round((time.process_time() - c) / len(q) * 1000, 2)
    batch = (time.perf_counter() - t) / len(q) * 1000
    return wall_single, batch, rows


def dir_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--backends", nargs="+", default=["exact", "ivfpq", "hnsw"])
    ap.add_argument("--single", type=int, default=50, help="queries timed one at a time")
    ap.add_argument("--ivfpq", default="nlist=1024,train_size=65536", help="build params, k=v,...")
    ap.add_argument("--hnsw", default="M=16,ef_construction=40", help="build params, k=v,...")
    ap.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64], help="ivfpq sweep")
    ap.add_argument("--rerank", type=int, nargs="+", default=[5, 10], help="ivfpq sweep (candidates = k*rerank)")
    ap.add_argument("--ef", type=int, nargs="+", default=[128, 256, 512], help="hnsw sweep (rerank 4)")
    ap.add_argument("--out", default="/tmp/scale_ann.jsonl")
    args = ap.parse_args()

    import faiss

    from fashionlens.index.factory import make_index, open_index

    faiss.omp_set_num_threads(1)
    k = 10
    build_params = {b: {kv.split("=")[0]: int(kv.split("=")[1]) for kv in getattr(args, b).split(",") if kv}
                    for b in ("ivfpq", "hnsw")}

    def emit(row: dict) -> None:
        row |= {"n": args.n, "dim": args.dim, "peak_rss_gb": round(rss_gb(), 2)}
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    t = time.perf_counter()
    x = mixture(args.n, args.dim, seed=0)
    q = mixture(args.queries, args.dim, seed=1)
    ids = np.char.mod("%d", np.arange(args.n))
    emit({"step": "data", "seconds": round(time.perf_counter() - t, 1)})
    mask = np.zeros(args.n, dtype=bool)
    mask[::10] = True  # a 10% metadata filter

    exact = make_index("exact", x, ids)
    s1, sb, truth = latency_ms(exact, q, k, args.single)
    cpu = dict(CPU)
    _, _, truth_f = latency_ms(exact, q[:50], k, 1, mask=mask)
    emit({"backend": "exact", "build_s": 0.0, "size_mb": round(x.nbytes / 1e6), "ms_single": round(s1, 2),
          "ms_batch": round(sb, 2), "recall10": 1.0, **cpu})
    tmp = Path(tempfile.mkdtemp(prefix="scale-ann-", dir=os.environ.get("SCALE_TMP")))
    sweeps = {"ivfpq": [{"nprobe": p, "rerank": r} for p in args.nprobe for r in args.rerank],
              "hnsw": [{"ef_search": e} for e in args.ef]}
    for backend in [b for b in args.backends if b != "exact"]:
        t = time.perf_counter()
        index = make_index(backend, x, ids, **build_params[backend])
        build = time.perf_counter() - t
        folder = tmp / backend
        index.save(folder)
        faiss_mb = (folder / "ann.faiss").stat().st_size / 1e6
        emit({"backend": backend, "step": "build", "build_s": round(build, 1), "ann_mb": round(faiss_mb, 1),
              "folder_mb": round(dir_mb(folder), 1), "params": index.params})
        del index
        index = open_index(folder)  # exact vectors memory-mapped, as a server would run it
        for setting in sweeps[backend]:
            for key, val in setting.items():
                if key == "rerank":
                    index.rerank = val
                else:
                    index.params[key] = val
            s1, sb, rows = latency_ms(index, q, k, args.single)
            cpu = dict(CPU)
            _, _, rows_f = latency_ms(index, q[:50], k, 1, mask=mask)
            emit({"backend": backend, "setting": setting, "ms_single": round(s1, 2), "ms_batch": round(sb, 2),
                  "recall10": round(recall(rows, truth), 4), "recall10_filtered": round(recall(rows_f, truth_f), 4), **cpu})
        del index
        shutil.rmtree(folder)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
