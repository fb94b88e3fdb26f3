"""`--engine ray` vs the local engine on a 2,000-item Myntra sample: same vectors, same search results.

1. Throughput on a small fresh sample (no cache): local engine vs Ray with 1 and 2 actors
   (1 torch thread each; Ray started with num_cpus=2), startup included.
2. The full sample on Ray (fresh cache) vs the local engine (user cache): max |difference|,
   top-10 agreement of exact search with every item as a query, and the time of a cached re-run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scale_ray.py [--n 2000] [--probe 100] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", default="../shared/data/myntra")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--probe", type=int, default=100, help="items for the throughput comparison")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--encoder", default="efficientnet-lite0")
    args = ap.parse_args()

    import ray
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import DEFAULT_CACHE, embed_images
    from fashionlens.embed.ray_engine import embed_images_ray
    from fashionlens.encoders.registry import create
    from fashionlens.index import ExactIndex

    torch.set_num_threads(1)
    cat = load_catalog(args.catalog, check_images=False).sample(args.n, seed=0)
    probe = load_catalog(args.catalog, check_images=False).sample(args.probe, seed=123)
    enc = create(args.encoder)
    res: dict = {"n": args.n, "encoder": args.encoder, "probe": args.probe}

    t = time.perf_counter()
    embed_images(enc, probe, cache_dir=None, progress=False)
    res["probe_local_s"] = round(time.perf_counter() - t, 1)
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    for conc in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            embed_images_ray(args.encoder, probe, tmp, concurrency=conc, block_size=25, progress=False)
            res[f"probe_ray{conc}_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(res), flush=True)

    t = time.perf_counter()
    local = embed_images(enc, cat, DEFAULT_CACHE, progress=False)
    res["local_s"] = round(time.perf_counter() - t, 1)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        remote = embed_images_ray(args.encoder, cat, tmp, concurrency=args.concurrency, progress=False)
        res["ray_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        again = embed_images_ray(args.encoder, cat, tmp, concurrency=args.concurrency, progress=False)
        res["ray_rerun_s"] = round(time.perf_counter() - t, 1)
        res["shards"] = len(list(Path(tmp).rglob("ray-*.parquet")))
    res["max_abs_diff"] = float(np.abs(remote - local).max())
    res["rerun_identical"] = bool(np.array_equal(again, remote))
    a, b = ExactIndex(local, cat.ids), ExactIndex(remote, cat.ids)
    ra, rb = a.search(local, 10)[1], b.search(local, 10)[1]
    res["top10_lists_identical"] = float(np.mean(np.all(ra == rb, axis=1)))
    res["top10_overlap"] = float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ra, rb)]))
    res["machine"] = "2-core shared CPU container"
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(res), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
