"""Explore a seeded 5,000-item sample of the real Myntra catalog; Grad-CAM of two categorization heads.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/explore_myntra.py --n 5000 --out /tmp/explore_myntra

Writes OUT/report.html + summary.json (the `fashionlens explore` report, with a masterCategory
Grad-CAM section) and OUT/gradcam_articleType/*.png (photo | overlay for a linear articleType head),
and prints the numbers recorded in docs/bench/explore.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--myntra", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"))
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--out", default="/tmp/explore_myntra")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import embed_images
    from fashionlens.encoders.registry import create
    from fashionlens.explore.gradcam import (
        cam_mass_inside,
        compute_cams,
        fit_linear_head,
        product_masks,
        save_gradcam,
    )
    from fashionlens.explore.report import ExploreConfig, run_explore

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    cat = load_catalog(args.myntra, check_images=False).sample(args.n, seed=0)
    enc = create("efficientnet-lite0")
    t = time.perf_counter()
    X = embed_images(enc, cat)
    print(f"embedded {len(cat)} photos in {time.perf_counter() - t:.1f} s (cached runs: ~0 s)")
    cfg = ExploreConfig(label_columns=("masterCategory", "subCategory", "articleType", "baseColour", "usage"),
                        gradcam_column="masterCategory", n_gradcam=12)
    summary = run_explore(cat, enc, out, cfg, embeddings=X)
    print(json.dumps({k: summary[k] for k in ("n_items", "k", "elbow_k", "silhouette", "ari", "near_duplicates",
                                              "duplicate_groups", "gradcam", "seconds", "stage_seconds")}, indent=1))
    print(json.dumps(summary["agreement"], indent=1))

    # a finer head: articleType (classes with >= 20 items), Grad-CAM for the predicted class
    y = cat.df["articleType"].astype(str).to_numpy()
    counts = {c: (y == c).sum() for c in set(y)}
    keep = np.flatnonzero([counts[c] >= 20 for c in y])
    rng = np.random.default_rng(0)
    rng.shuffle(keep)
    tr, te = keep[: int(0.8 * len(keep))], keep[int(0.8 * len(keep)) :]
    head, classes, clf = fit_linear_head(enc.model, X[tr], y[tr])
    acc = float((clf.predict(X[te]) == y[te]).mean())
    show = te[:12]
    pred = [classes.index(p) for p in clf.predict(X[show])]
    imgs = [cat.images[i] for i in show]
    names = [f"{cat.ids[i]}_{y[i]}_pred-{classes[p]}".replace(" ", "-") for i, p in zip(show, pred, strict=True)]
    save_gradcam(head, enc.model.bn2, imgs, pred, out / "gradcam_articleType", enc.preprocess, names=names)
    # the map's mass on the product, over 200 held-out items (one batch at a time to bound memory)
    inside, area = [], []
    for s in range(0, 200, 25):
        b = te[s : s + 25]
        p = [classes.index(v) for v in clf.predict(X[b])]
        cams, rgb = compute_cams(head, enc.model.bn2, [cat.images[i] for i in b], p, enc.preprocess)
        m = product_masks(rgb)
        inside += cam_mass_inside(cams, m).tolist()
        area += m.reshape(len(m), -1).mean(axis=1).tolist()
    print(json.dumps({"articleType_head": {"n_classes": len(classes), "n_train": len(tr), "n_test": len(te),
                                           "test_accuracy": round(acc, 4),
                                           "cam_mass_on_product": round(float(np.mean(inside)), 4),
                                           "product_area": round(float(np.mean(area)), 4),
                                           "share_items_mass_above_area": round(float(np.mean(np.array(inside) > np.array(area))), 4)}},
                     indent=1))


if __name__ == "__main__":
    main()
