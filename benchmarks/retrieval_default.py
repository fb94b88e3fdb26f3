"""Text→image and image→image retrieval of the offline default on held-out Myntra items.

Split: 2,000 held-out items (seed 0) form the query set and the whole gallery; the index is trained
on N of the remaining items. Rows: chance, raw features (image→image only), a linear two-tower head
without labels, and the default (residual MLP heads, InfoNCE + SupCon on articleType).

    .venv/bin/python benchmarks/retrieval_default.py --n-train 12000
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    from fashionlens.catalog import load_catalog
    from fashionlens.embed import embed_images
    from fashionlens.encoders import create
    from fashionlens.evaluation.metrics import label_precision_at_k, topk
    from fashionlens.evaluation.statistics import bootstrap_ci
    from fashionlens.search.evaluate import evaluate_retrieval
    from fashionlens.search.index import BuildConfig, build_index
    from fashionlens.train.config import AlignConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--myntra", default="../shared/data/myntra")
    ap.add_argument("--n-train", type=int, default=12000)
    ap.add_argument("--n-test", type=int, default=2000)
    args = ap.parse_args()
    cat = load_catalog(args.myntra, check_images=False)
    rest, test = cat.split(args.n_test, seed=0)
    train = rest.sample(args.n_train, seed=0)
    print(f"Myntra: {len(train)} training items, {len(test)} held-out queries = gallery\n")

    raw = embed_images(create("efficientnet-lite0"), test, progress=False)
    nb = topk(raw, raw, 10, exclude_self=True)
    lab = test.column("articleType").astype(str)
    lab2 = np.char.add(np.char.add(lab, "|"), test.column("baseColour").astype(str))
    print("| model | R@1 | R@5 | R@10 (95% CI) | MRR | NDCG@10 | chance@10 | i2i P@10 type | i2i P@10 type+colour | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| raw Lite0 features (no text tower) | | | | | | | {label_precision_at_k(nb, lab):.3f} | {label_precision_at_k(nb, lab2):.3f} | |")
    variants = {
        "linear two-tower, InfoNCE only": AlignConfig(head="linear", supcon_weight=0.0),
        "default: MLP heads, InfoNCE + SupCon(articleType)": AlignConfig(),
        "MLP heads, SupCon weight 0.5": AlignConfig(supcon_weight=0.5),
    }
    for label, acfg in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            idx = build_index(train, tmp, BuildConfig(align=acfg), progress=False)
            secs = time.perf_counter() - t
            res = evaluate_retrieval(idx.encoder, test, progress=False, return_ranks=True)
        m, i2i = res["text_to_image"], res["image_to_image"]
        lo, hi = bootstrap_ci((m["ranks"] < 10).astype(float))
        print(f"| {label} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} ({lo:.3f}-{hi:.3f}) | "
              f"{m['mrr']:.3f} | {m['ndcg@10']:.3f} | {m['chance@10']:.4f} | {i2i['precision@10_articleType']:.3f} | "
              f"{i2i['precision@10_articleType_baseColour']:.3f} | {secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
