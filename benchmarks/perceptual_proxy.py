"""PROXY triplets mined from Myntra catalog labels (same articleType+baseColour vs same articleType
only; same articleType vs same subCategory only): untuned EfficientNet-Lite0 vs an MLP head trained
on proxy triplets of other items, scored on a held-out part of the catalog. These are label-derived
triplets, not human judgements. Then the aligned features' effect downstream, on the same held-out
items: image->image retrieval (precision@10 of same articleType / same articleType+colour, leave one
out) and articleType categorisation (a logistic probe fitted on the training items' features), raw
vs aligned, with paired bootstrap CIs of the difference.

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
from fashionlens.categorize.heads import ProbeHead  # noqa: E402
from fashionlens.embed import embed_images  # noqa: E402
from fashionlens.encoders.base import l2_normalize  # noqa: E402
from fashionlens.encoders.registry import create  # noqa: E402
from fashionlens.evaluation.classification import classification_metrics  # noqa: E402
from fashionlens.evaluation.metrics import topk  # noqa: E402
from fashionlens.evaluation.statistics import paired_bootstrap  # noqa: E402
from fashionlens.perceptual.evaluate import (  # noqa: E402
    cosine_distances,
    human_ceiling,
    mine_proxy_triplets,
    two_afc,
)
from fashionlens.perceptual.train import PerceptualConfig, fit_head  # noqa: E402

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
            z_train = head(torch.as_tensor(feats["train"])).numpy()
        after = two_afc(*cosine_distances(z, idx["test"]), trips["test"].p_left)
        print(json.dumps({**info, "loss": loss, "best_epoch": fit.best_epoch, "after": after,
                          "train_s": round(fit.seconds, 1), "wall_s": round(time.time() - t0, 1),
                          "downstream": downstream(train_cat, test_cat, feats, z_train, z)}), flush=True)


def downstream(train_cat, test_cat, feats: dict, z_train: np.ndarray, z_test: np.ndarray) -> dict:
    """Raw vs aligned features on the held-out items: retrieval precision@10 and probe accuracy."""
    out: dict = {}
    art, col = test_cat.column("articleType").astype(str), test_cat.column("baseColour").astype(str)
    both = np.char.add(np.char.add(art, "|"), col)
    per_query = {}
    for name, x in (("raw", feats["test"]), ("aligned", z_test)):
        nb = topk(l2_normalize(x), l2_normalize(x), 10, exclude_self=True)
        per_query[name] = {"articleType": (art[nb] == art[:, None]).mean(1), "articleType+colour": (both[nb] == both[:, None]).mean(1)}
    for lab in ("articleType", "articleType+colour"):
        t = paired_bootstrap(1 - per_query["aligned"][lab], 1 - per_query["raw"][lab])  # error rates: lower is better
        out[f"i2i_precision@10[{lab}]"] = {"raw": float(per_query["raw"][lab].mean()),
                                           "aligned": float(per_query["aligned"][lab].mean()),
                                           "diff_ci95": [-t.ci95[1], -t.ci95[0]], "p": t.p_value}
    y_tr, y_te = train_cat.column("articleType").astype(str), art
    classes = sorted({c for c in set(y_tr) if (y_tr == c).sum() >= 5})
    ci = {c: i for i, c in enumerate(classes)}
    tr_rows, te_rows = np.flatnonzero(np.isin(y_tr, classes)), np.flatnonzero(np.isin(y_te, classes))
    yi_tr, yi_te = np.array([ci[c] for c in y_tr[tr_rows]]), np.array([ci[c] for c in y_te[te_rows]])
    correct = {}
    for name, xtr, xte in (("raw", feats["train"], feats["test"]), ("aligned", z_train, z_test)):
        proba = ProbeHead(C=0.5).fit(xtr[tr_rows], yi_tr, len(classes)).predict_proba(xte[te_rows])
        m = classification_metrics(yi_te, proba.argmax(1), classes, proba)
        correct[name] = proba.argmax(1) == yi_te
        out[f"probe_articleType[{name}]"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": int(len(te_rows)),
                                             "classes": len(classes)}
    t = paired_bootstrap(1.0 - correct["aligned"], 1.0 - correct["raw"])
    out["probe_accuracy_diff_ci95"] = [-t.ci95[1], -t.ci95[0]]
    out["probe_accuracy_diff_p"] = t.p_value
    return out

if __name__ == "__main__":
    main()
