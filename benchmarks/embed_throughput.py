"""Default image encoder throughput on this CPU (JPEG decode included), and what resolution costs.

For each input size: images/s embedding real Myntra photos from disk, and an articleType linear probe
accuracy (train/test split of the same sample) so speed is weighed against quality. Also batch size
and channels_last variants at the default size, and peak RSS of a cached run (the store holds only one
chunk of decoded images at a time).

    .venv/bin/python benchmarks/embed_throughput.py --n 3000 --myntra ../shared/data/myntra
"""

from __future__ import annotations

import argparse
import subprocess
import sys
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


def main() -> None:
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.encoders import create

    ap = argparse.ArgumentParser()
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 160, 128, 112])
    ap.add_argument("--memory-n", type=int, nargs="+", default=[1000, 4000])
    args = ap.parse_args()
    cat = load_catalog(args.myntra, check_images=False).sample(args.n, seed=0)
    y = cat.column("articleType").astype(str)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(cat)} Myntra photos (60x80 JPEG)\n")
    print("| input px | batch | images/s (decode incl.) | articleType probe acc |")
    print("|---|---|---|---|")
    for size in args.sizes:
        enc = create("efficientnet-lite0", size=size)
        ips, x = throughput(enc, cat.images, 16)
        print(f"| {size} | 16 | {ips:.1f} | {probe_accuracy(x, y):.3f} |", flush=True)
    enc = create("efficientnet-lite0")
    sub = cat.images[: min(1000, len(cat))]
    ips64, _ = throughput(enc, sub, 64)
    enc.model = enc.model.to(memory_format=torch.contiguous_format)
    print(f"| {enc.preprocess.size} | 64 | {ips64:.1f} | (same features) |")
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
        print(f"| {n} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
