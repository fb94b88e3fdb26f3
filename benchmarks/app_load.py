"""Bounded load test of `fashionlens serve` on localhost: text-search latency at 1, 8 and 32 clients.

    .venv/bin/python benchmarks/app_load.py --work /tmp/app_bench [--index DIR] [--seconds 15]

Without --index it makes a 40k-item index: the real full Myntra catalog (39.6k rows, its metadata
used by filters and the results) with *synthetic* unit vectors of the real dimension, queried through
a real aligned efficientnet-lite0 + minilm-l6 encoder (trained on 300 items, so each text query is a
real MiniLM forward + projection head). Vector values do not change the cost of exact search, so the
latency is that of a real 40k index; the ranking is of course meaningless. Queries are distinct real
product names (no query-cache hits) unless --repeat is given. Only 127.0.0.1 is contacted; every level
stops after --seconds or --requests, whichever comes first. Clients are threads with keep-alive
`http.client` connections in this process (not the server's); each level also prints the server's and
this load generator's CPU per request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MYNTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"


def make_index(work: Path, n_encoder_items: int = 300) -> Path:
    """A real small aligned index (for its encoder), then a 40k index with synthetic vectors beside it."""
    from fashionlens.catalog import load_catalog
    from fashionlens.index.exact import ExactIndex
    from fashionlens.search.index import BuildConfig, SearchIndex, build_index
    from fashionlens.train.config import AlignConfig
    from fashionlens.utils import write_json

    full = load_catalog(MYNTRA, check_images=False)
    small_dir, big_dir = work / "encoder_index", work / "myntra40k"
    if not (small_dir / "index.json").is_file():
        build_index(full.sample(n_encoder_items, seed=0), small_dir,
                    BuildConfig(cache_dir=str(work / "cache"), align=AlignConfig(epochs=8, batch_size=128)), progress=False)
    small = SearchIndex(small_dir)
    rng = np.random.default_rng(0)
    vec = rng.standard_normal((len(full), small.index.dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    big_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(small_dir / "encoder", big_dir / "encoder", dirs_exist_ok=True)
    ExactIndex(vec, full.ids).save(big_dir)
    full.save(big_dir / "catalog.parquet")
    write_json(big_dir / "index.json", {**small.info, "n_items": len(full), "synthetic_vectors": True})
    return big_dir


def cpu_breakdown(index: Path, queries: list[str], n: int = 30) -> None:
    """CPU time of one search request's stages, single-threaded, real product names as queries
    (contention on a shared machine inflates wall-clock latency, much less the CPU time each request
    needs): the text tower as loaded (torch) and as the server runs it (`Encoder.for_serving`)."""
    import faiss
    import torch

    from fashionlens.search.index import SearchIndex

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    idx = SearchIndex(index)
    parts = {}
    for label, enc in (("torch", idx.encoder), ("serving", idx.encoder.for_serving())):
        enc.encode_texts(["warm up"])
        enc_t, knn = [], []
        for i in range(n):
            c0 = time.thread_time()
            q = enc.encode_texts([queries[-1 - i]])  # real names (short made-up queries cost ~1/3 less)
            c1 = time.thread_time()
            idx.index.search(q, 12)
            knn.append(time.thread_time() - c1)
            enc_t.append(c1 - c0)
        parts[label] = np.median(enc_t) * 1000
    print(f"CPU per request (median of {n}, 1 thread): text tower + head {parts['torch']:.1f} ms in torch, "
          f"{parts['serving']:.1f} ms as served; exact top-12 over {len(idx.index)} x {idx.index.dim} "
          f"{np.median(knn) * 1000:.1f} ms", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_level(base: str, clients: int, queries: list[str], seconds: float, max_requests: int,
              mode: str = "default", page: bool = False, server_pid: int | None = None) -> dict:
    """`clients` closed-loop clients, each a thread with one keep-alive `http.client` connection (the
    load generator shares the cores with the server: a light client leaves them to what is measured;
    its own CPU per request is reported). `page`: load the web page (GET /?q=..., 12 results rendered)
    instead of /api/search. `server_pid`: also report the server's CPU per request (its process and
    children, from the OS)."""
    import http.client
    import json
    import threading
    from urllib.parse import urlencode, urlsplit

    import psutil

    host, port = urlsplit(base).hostname, urlsplit(base).port
    lat: list[float] = []
    asked: set[str] = set()  # to report that every query was new (the server's query cache never answers)
    counts = {"errors": 0, "sent": 0}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def next_query() -> str | None:
        with lock:
            if counts["sent"] >= max_requests or time.perf_counter() >= stop_at:
                return None
            q = queries[counts["sent"] % len(queries)]
            counts["sent"] += 1
            asked.add(q.strip().lower())
            return q

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        while (q := next_query()) is not None:
            params = {"q": q, "k": 12} | ({} if mode == "default" else {"mode": mode})
            t0 = time.perf_counter()
            try:
                conn.request("GET", ("/?" if page else "/api/search?") + urlencode(params))
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and (body.count(b'class="card"') == 12 if page else len(json.loads(body)["results"]) == 12)
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
            with lock:
                lat.append(time.perf_counter() - t0)
                counts["errors"] += not ok
        conn.close()

    procs = [psutil.Process(server_pid)] if server_pid else []
    procs += [c for p in procs for c in p.children(recursive=True)]
    server_cpu = sum(sum(p.cpu_times()[:2]) for p in procs)
    t0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, client_cpu = time.perf_counter() - t0, time.process_time() - c0
    server_cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - server_cpu
    ms = np.asarray(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": counts["errors"], "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()), "rps": len(lat) / wall,
            "distinct": len(asked), "client_cpu_ms": client_cpu * 1000 / len(lat),
            "server_cpu_ms": server_cpu * 1000 / len(lat) if procs else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fashionlens_app_bench"))
    ap.add_argument("--index", type=Path, help="serve this index instead of making the synthetic 40k one")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=15.0, help="upper bound per level")
    ap.add_argument("--requests", type=int, default=600, help="upper bound per level")
    ap.add_argument("--repeat", action="store_true", help="repeat 20 queries (query-cache hits)")
    ap.add_argument("--threads", type=int, default=1, help="passed to `fashionlens serve --threads`")
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="`fashionlens serve --workers`, one server per value")
    ap.add_argument("--baseline", action="store_true", help="also run each server with --no-optimize (torch text tower)")
    ap.add_argument("--page", action="store_true", help="also load the web page (GET /?q=...) at each level")
    ap.add_argument("--modes", nargs="+", default=["default"], help="search modes to load (hybrid, vector, keyword; "
                    "default = the index's own: hybrid where it has texts)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("FASHIONLENS_PROGRESS", "0")

    index = args.index or make_index(args.work)
    import pandas as pd

    names = pd.read_parquet(index / "catalog.parquet", columns=["text"])["text"].drop_duplicates()
    queries = names.sample(frac=1, random_state=0).tolist()
    cpu_breakdown(index, queries)  # from the end of the list: names the load levels do not reach
    queries = queries[: 20 if args.repeat else None]
    for workers in args.workers:
        for optimize in (True, False) if args.baseline else (True,):
            serve_and_load(index, queries, args, workers, optimize)


def serve_and_load(index: Path, queries: list[str], args: argparse.Namespace, workers: int, optimize: bool = True) -> None:
    """Start `fashionlens serve` with `workers` processes, wait for it, run every client level, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "fashionlens.cli.main", "serve", str(index), "--port", str(port),
                               "--threads", str(args.threads), "--workers", str(workers),
                               "--optimize" if optimize else "--no-optimize"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        t0 = time.perf_counter()
        while True:
            if server.poll() is not None:
                sys.exit(f"server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - t0 > 300:
                sys.exit("server did not start in 300 s")
            time.sleep(0.5)
        if workers > 1:  # /healthz answers once the first worker is up: wait until every one has answered
            time.sleep(5 * workers)
        print(f"server ({workers} worker(s), {'optimized' if optimize else 'torch'} text tower) ready in "
              f"{time.perf_counter() - t0:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        offset = 0
        print("| mode | clients | requests | distinct queries | errors | p50 ms | p95 ms | max ms | req/s "
              "| server CPU ms/req | client CPU ms/req | load avg |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in args.clients:
            for mode, page in [(m, False) for m in args.modes] + ([(m, True) for m in args.modes] if args.page else []):
                qs = queries if args.repeat else queries[offset:] + queries[:offset]  # fresh queries per level
                res = run_level(base, c, qs, args.seconds, args.requests, mode, page, server.pid)
                offset += res["requests"]
                print(f"| {mode}{' page' if page else ''} | {c} | {res['requests']} | {res['distinct']} | {res['errors']} | {res['p50_ms']:.1f} | {res['p95_ms']:.1f} | "
                      f"{res['max_ms']:.1f} | {res['rps']:.1f} | {res['server_cpu_ms']:.1f} | {res['client_cpu_ms']:.1f} | "
                      f"{os.getloadavg()[0]:.1f} |", flush=True)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
