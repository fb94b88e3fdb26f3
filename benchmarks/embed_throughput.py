"""Default image encoder throughput on this CPU (JPEG decode included), and what resolution costs.

For each input size: images/s embedding real Myntra photos from disk, and an articleType linear probe
accuracy (train/test split of the same sample) so speed is weighed against quality. Then, at the
default size, each runtime (torch fp32, ONNX Runtime fp32, ONNX Runtime int8) in the same run, both
through `encode_images` (decode in the loop) and through `embed_images` (the thread-pool decode), and
ONNX batch sizes. Last, peak RSS of a cached run (the store holds one chunk of decoded images).
Each row prints the 1-minute load average beside it: on a shared machine, compare rows of one run.

    .venv/bin/python benchmarks/embed_throughput.py --n 3000 --myntra ../shared/data/myntra
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def probe_accuracy(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    keep = np.isin(y, [c for c, n in zip(*np.unique(y, return_counts=True)) if n >= 10])
    xtr, xte, ytr, yte = train_test_split(x[keep], y[keep], test_size=0.3, random_state=seed, stratify=y[keep])
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(xtr, ytr)
    return float(clf.score(xte, yte))


def throughput(enc, paths: list[str], batch: int) -> tuple[float, np.ndarray]:
    enc.batch_size = batch
    enc.encode_images(paths[:batch])  # warm-up
    t = time.perf_counter()
    out = enc.encode_images(paths)
    return len(paths) / (time.perf_counter() - t), out


def pipeline(enc, paths: list[str]) -> tuple[float, np.ndarray]:
    """images/s of `embed_images` without a cache: thread-pool decode + the encoder, as `index` runs."""
    from fashionlens.embed import embed_images

    t = time.perf_counter()
    out = embed_images(enc, paths, cache_dir=None, progress=False)
    return len(paths) / (time.perf_counter() - t), out


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def runtimes(cat, calib_paths: list[str], y: np.ndarray, batches: list[int]) -> None:
    """torch fp32 / ONNX fp32 / ONNX int8 at the default size, in one run, on the same photos."""
    from fashionlens.encoders import create

    print("\n| runtime | path | batch | images/s (decode incl.) | articleType probe acc | max abs diff vs torch | load |")
    print("|---|---|---|---|---|---|---|")
    ref = None
    for runtime in ("torch", "onnx", "onnx-int8"):
        enc = create("efficientnet-lite0", runtime=runtime)
        t = time.perf_counter()
        enc.encode_images(calib_paths)  # warm-up; int8: calibrates on these (other photos than the test)
        setup = time.perf_counter() - t
        ips, x = throughput(enc, cat.images, enc.batch_size)
        pips, px = pipeline(enc, cat.images)
        ref = x if ref is None else ref
        diff = f"{np.abs(x - ref).max():.1e}"
        acc = probe_accuracy(px, y)
        print(f"| {runtime} | encode_images | {enc.batch_size} | {ips:.1f} | {probe_accuracy(x, y):.3f} | {diff} | {load()} |")
        print(f"| {runtime} | embed_images (decode pool) | {enc.batch_size} | {pips:.1f} | {acc:.3f} | | {load()} |")
        print(f"  ({runtime}: first call incl. export/calibration or load from the cache: {setup:.1f} s)", flush=True)
    enc = create("efficientnet-lite0", runtime="onnx")
    sub = cat.images[: min(500, len(cat))]
    for b in batches:
        enc.batch_size = b
        pips, _ = pipeline(enc, sub)
        print(f"| onnx | embed_images (decode pool) | {b} | {pips:.1f} | (same features) | | {load()} |", flush=True)


def main() -> None:
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.encoders import create

    ap = argparse.ArgumentParser()
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--sizes", type=int, nargs="*", default=[224, 160, 128, 112])
    ap.add_argument("--memory-n", type=int, nargs="*", default=[1000, 4000])
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--no-runtimes", action="store_true", help="skip the runtime comparison")
    args = ap.parse_args()
    # a fresh export cache, so the int8 row is calibrated here, on photos outside the test sample
    os.environ.setdefault("FASHIONLENS_CACHE", tempfile.mkdtemp(prefix="fl-bench-cache-"))
    full = load_catalog(args.myntra, check_images=False)
    cat = full.sample(args.n, seed=0)
    calib = [p for p in full.sample(min(len(full), args.n + 400), seed=1).images if p not in set(cat.images)][:256]
    y = cat.column("articleType").astype(str)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(cat)} Myntra photos (60x80 JPEG), "
          f"load {load()}\n")
    print("| input px | batch | images/s (decode incl.) | articleType probe acc |")
    print("|---|---|---|---|")
    for size in args.sizes:
        enc = create("efficientnet-lite0", size=size, runtime="torch")
        ips, x = throughput(enc, cat.images, 16)
        print(f"| {size} | 16 | {ips:.1f} | {probe_accuracy(x, y):.3f} |", flush=True)
    if args.sizes:
        enc = create("efficientnet-lite0", runtime="torch")
        sub = cat.images[: min(1000, len(cat))]
        ips64, _ = throughput(enc, sub, 64)
        enc.model = enc.model.to(memory_format=torch.contiguous_format)
        print(f"| {enc.preprocess.size} | 64 | {ips64:.1f} | (same features) |")
    if not args.no_runtimes:
        runtimes(cat, calib, y, args.batches)
    if args.memory_n:
        print("\nPeak RSS of `embed_images` on n photos (fresh process, cache in a temp dir):\n")
        print("| n | peak RSS (MB) |")
        print("|---|---|")
    for n in args.memory_n:
        code = (
            "import resource, tempfile; from fashionlens.catalog import load_catalog; "
            "from fashionlens.encoders import create; from fashionlens.embed import embed_images; "
            f"c = load_catalog({args.myntra!r}, check_images=False).sample({n}, seed=1); "
            "embed_images(create('efficientnet-lite0'), c, cache_dir=tempfile.mkdtemp(), progress=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
        )
        rss = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        print(f"| {n} | {rss} | (load {load()})", flush=True)


if __name__ == "__main__":
    main()
