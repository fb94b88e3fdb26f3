"""Default image encoder throughput on this CPU (JPEG decode included), and what resolution costs.

For each input size: images/s embedding real Myntra photos from disk, and an articleType linear probe
accuracy (train/test split of the same sample) so speed is weighed against quality. Then, at the
default size, each runtime (torch fp32, ONNX Runtime fp32, ONNX Runtime int8) in the same run, both
through `encode_images` (decode in the loop) and through `embed_images` (the thread-pool decode), and
ONNX batch sizes. Last, peak RSS of a cached run (the store holds one chunk of decoded images).
Each row prints the 1-minute load average beside it: on a shared machine, compare rows of one run.

    .venv/bin/python benchmarks/embed_throughput.py --n 3000 --myntra ../shared/data/myntra
    .venv/bin/python benchmarks/embed_throughput.py --n 2000 --sizes --no-runtimes --memory-n \\
        --geometries 160x160 120x160 96x128     # input geometry: MACs, photos/s, paired probe
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
    return float(probe_hits(x, y, seed).mean())


def probe_hits(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """1/0 per test item of the articleType probe (the same 70/30 split for every `x` of these items)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    keep = np.isin(y, [c for c, n in zip(*np.unique(y, return_counts=True)) if n >= 10])
    xtr, xte, ytr, yte = train_test_split(x[keep], y[keep], test_size=0.3, random_state=seed, stratify=y[keep])
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(xtr, ytr)
    return (clf.predict(xte) == yte).astype(np.float64)


def conv_macs(enc) -> float:
    """Multiply-accumulates of one photo through the encoder's torch network at its input size
    (every convolution: output elements x input channels per group x kernel area; 1 MAC = 2 FLOP)."""
    import torch

    total = [0]

    def hook(m, _inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    hooks = [m.register_forward_hook(hook) for m in enc.model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        enc.model(torch.zeros(1, 3, *enc.preprocess.hw))
    for h in hooks:
        h.remove()
    return float(total[0])


def geometries(cat, y: np.ndarray, shapes: list[str], runtime: str) -> None:
    """Input geometries (WxH; the photos are 60x80, so 120x160 keeps their aspect without white side
    bands): MACs, photos/s through `embed_images` (decode pool) and the probe, paired against the first."""
    from fashionlens.encoders import create
    from fashionlens.evaluation.statistics import bootstrap_ci

    print("\n| input WxH | MMAC/photo | runtime | images/s (embed_images, decode incl.) | articleType probe acc [95% CI] "
          "| vs first row [95% CI] | load |")
    print("|---|---|---|---|---|---|---|")
    ref = None
    for shape in shapes:
        w, h = (int(v) for v in shape.lower().split("x"))
        enc = create("efficientnet-lite0", size=h, width=w, runtime=runtime)
        macs = conv_macs(enc) / 1e6
        enc.encode_images(cat.images[:32])  # export (once) and warm-up, outside the timing
        ips, x = pipeline(enc, cat.images)
        hits = probe_hits(x, y)
        lo, hi = bootstrap_ci(hits)
        ref = hits if ref is None else ref
        dlo, dhi = bootstrap_ci(hits - ref)
        print(f"| {w}x{h} | {macs:.1f} | {runtime} | {ips:.1f} | {hits.mean():.3f} [{lo:.3f}, {hi:.3f}] | "
              f"{(hits - ref).mean():+.3f} [{dlo:+.3f}, {dhi:+.3f}] | {load()} |", flush=True)


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
    ap.add_argument("--geometries", nargs="*", default=[], help="input WxH to compare, e.g. 160x160 120x160 96x128")
    ap.add_argument("--geometry-runtime", default="onnx", help="runtime of the geometry rows")
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
    if args.geometries:
        geometries(cat, y, args.geometries, args.geometry_runtime)
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
