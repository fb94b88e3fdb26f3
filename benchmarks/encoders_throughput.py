"""CPU throughput of every encoder family: tiny random checkpoints + the two offline real models.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoders_throughput.py --out docs/bench/encoders.md

Real Myntra photos (60x80 JPEG) and product names from ../shared/data/myntra. Loading and one
warm-up batch are excluded; each timing is the best of `--repeats` passes (the box is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MYNTRA = ROOT.parent / "shared" / "data" / "myntra"


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--tiny-items", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown fragment here")
    args = ap.parse_args()

    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.catalog.images import open_image
    from fashionlens.encoders import create
    from fashionlens.encoders.tiny import BUILDERS, build_tiny
    from fashionlens.utils import atomic_write

    torch.set_num_threads(args.threads)
    cat = load_catalog(MYNTRA, check_images=False).sample(max(args.images, args.texts), seed=0)
    images = [open_image(p) for p in cat.images[: args.images]]  # decoded once: time the encoder
    texts = list(cat.texts[: args.texts])

    rows: list[tuple[str, str, str, int, int, float, float]] = []

    def bench(label: str, kind: str, enc, n_img: int, n_txt: int) -> None:
        img_s = txt_s = float("nan")
        if "image" in enc.modalities and n_img:
            enc.encode_images(images[:8])
            img_s = n_img / _best(lambda: enc.encode_images(images[:n_img]), args.repeats)
        if "text" in enc.modalities and n_txt:
            enc.encode_texts(texts[:8])
            txt_s = n_txt / _best(lambda: enc.encode_texts(texts[:n_txt]), args.repeats)
        px = enc.preprocess.size if enc.preprocess else 0
        rows.append((label, kind, "+".join(enc.modalities), enc.dim, px, img_s, txt_s))
        print(f"{label:24s} {kind:6s} img/s={img_s:8.1f} txt/s={txt_s:8.1f}", flush=True)

    bench("efficientnet-lite0", "real", create("efficientnet-lite0", device="cpu"), args.images, 0)
    bench("minilm-l6", "real", create("minilm-l6", device="cpu"), 0, args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(BUILDERS):
            enc = create(name, device="cpu", **build_tiny(name, tmp))
            bench(name, "tiny", enc, args.tiny_items, args.tiny_items)

    load = os.getloadavg()[0]
    head = [
        "# Encoder throughput (CPU)",
        "",
        f"Measured {dt.date.today()} on this container ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs, load average {load:.1f} at the end), "
        f"torch {torch.__version__}, {args.threads} intra-op thread(s), batch = encoder default.",
        f"Data: {args.images} real Myntra photos (60x80 JPEG, decoded beforehand) and {args.texts} "
        "product names from ../shared/data/myntra. Best of "
        f"{args.repeats} passes after a warm-up batch; loading excluded.",
        "`tiny` rows are the 2-layer, 32-wide, 32-px random checkpoints of `fashionlens.encoders.tiny` "
        f"({args.tiny_items} items): they measure our wrapper and preprocessing overhead per family, "
        "not the real model's speed.",
        "",
        f"Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoders_throughput.py --threads {args.threads}`",
        "",
        "| encoder | weights | towers | dim | px | images/s | texts/s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    fmt = lambda v: "–" if v != v else f"{v:,.0f}"  # noqa: E731 - nan -> dash
    body = [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4] or '–'} | {fmt(r[5])} | {fmt(r[6])} |" for r in rows]
    text = "\n".join(head + body) + "\n"
    print(text)
    if args.out:
        with atomic_write(args.out) as tmp_path:
            tmp_path.write_text(text)


if __name__ == "__main__":
    main()
