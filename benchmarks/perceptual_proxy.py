"""PROXY triplets mined from Myntra catalog labels (same articleType+baseColour vs same articleType
only; same articleType vs same subCategory only): untuned EfficientNet-Lite0 vs an MLP head trained
on proxy triplets of other items, scored on a held-out part of the catalog. These are label-derived
triplets, not human judgements.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/perceptual_proxy.py [N_ITEMS]

Uses the shared embedding cache (`embed_images`): a `sample(n, seed=0)` others embedded costs no
encoding. Prints one JSON line per head as it finishes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fashionlens.catalog import load_catalog  # noqa: E402
from fashionlens.embed import embed_images  # noqa: E402
from fashionlens.encoders.registry import create  # noqa: E402
from fashionlens.tasks.perceptual import (  # noqa: E402
    cosine_distances,
    human_ceiling,
    mine_proxy_triplets,
    two_afc,
)
from fashionlens.train.perceptual import PerceptualConfig, fit_head  # noqa: E402

MYNTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"


def main() -> None:
    torch.set_num_threads(1)
    n_items = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    t0 = time.time()
    cat = load_catalog(MYNTRA, check_images=False).sample(n_items, seed=0)
    train_cat, test_cat = cat.split(0.3, seed=0)  # held-out items: no test photo is seen in training
    enc = create("efficientnet-lite0")
    feats = {"train": embed_images(enc, train_cat, progress=False), "test": embed_images(enc, test_cat, progress=False)}
    trips = {"train": mine_proxy_triplets(train_cat, 4000, seed=0), "test": mine_proxy_triplets(test_cat, 1500, seed=1)}
    pos = {k: {p: i for i, p in enumerate(c.images)} for k, c in (("train", train_cat), ("test", test_cat))}
    idx = {k: np.array([[pos[k][r], pos[k][a], pos[k][b]] for r, a, b in zip(t.ref, t.left, t.right, strict=True)])
           for k, t in trips.items()}
    # validation (early stopping only): a random 15% of the training triplets
    perm = np.random.default_rng(0).permutation(len(idx["train"]))
    va, tr = perm[: int(0.15 * len(perm))], perm[int(0.15 * len(perm)) :]
    tr_i, va_i = idx["train"][tr], idx["train"][va]
    tr_p, va_p = trips["train"].p_left[tr], trips["train"].p_left[va]
    before = two_afc(*cosine_distances(feats["test"], idx["test"]), trips["test"].p_left)
    info = {"source": "proxy", "encoder": "efficientnet-lite0", "n_items": n_items,
            "n_train_items": len(train_cat), "n_test_items": len(test_cat), "n_train_triplets": len(tr_i),
            "n_test_triplets": len(idx["test"]), "ceiling": human_ceiling(trips["test"].p_left), "before": before}
    for loss, kw in (("hinge", {"margin": 0.05}), ("logistic", {"temperature": 0.02})):
        cfg = PerceptualConfig(loss=loss, epochs=15, batch_size=1024, lr=1e-3, patience=4, hidden=256, **kw)
        head, fit = fit_head(feats["train"], tr_i, tr_p, va_i, va_p, cfg)
        with torch.no_grad():
            z = head(torch.as_tensor(feats["test"])).numpy()
        after = two_afc(*cosine_distances(z, idx["test"]), trips["test"].p_left)
        print(json.dumps({**info, "loss": loss, "best_epoch": fit.best_epoch, "after": after,
                          "train_s": round(fit.seconds, 1), "wall_s": round(time.time() - t0, 1)}), flush=True)

if __name__ == "__main__":
    main()
