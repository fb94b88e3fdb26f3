"""articleType accuracy of frozen-feature heads against the number of training items (issue 20).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/categorize_learning_curve.py --out /tmp/curve.jsonl \
        --cache $FASHIONLENS_CACHE --sizes 2160,4320,8643,17286,25929,36234 --candidates head,probe

The validation and test items are the 12k protocol's (`categorize train --limit 12000`: seeded sample,
stratified 80/20, 10% of the fit part for validation); the training rows are a seeded subset of its
8,643 train items, or all of them plus items from OUTSIDE the 12k sample (never a test item; classes
the protocol does not train on are dropped). Features: `efficientnet-lite0.stages` at 160 px (a 27k-photo
pass when the extra items are not cached yet). One JSON line per (size, candidate), with 95% CIs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/myntra"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache/fashionlens/embeddings"))
    ap.add_argument("--out", required=True, help="JSON lines file (appended)")
    ap.add_argument("--sizes", default="2160,4320,8643,17286,25929,36234")
    ap.add_argument("--candidates", default="head,probe")
    ap.add_argument("--seed", type=int, default=0, help="the MLP head's seed")
    args = ap.parse_args()

    import torch

    from fashionlens.catalog import load_catalog
    from fashionlens.categorize.data import class_weights, clean_labels, stratified_split
    from fashionlens.categorize.heads import MLPHead, ProbeHead
    from fashionlens.embed import embed_images
    from fashionlens.encoders import create
    from fashionlens.evaluation.classification import classification_metrics, metric_cis

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    label = "articleType"
    full = load_catalog(args.data, check_images=False)
    cat = full.sample(12000, seed=0)  # the protocol's split, as the CLI and categorize_myntra.py draw it
    lab = cat.subset(clean_labels(cat.column(label)) != "")
    fit_pos, test_pos = stratified_split(clean_labels(lab.column(label)), 0.2, 0)
    fit, test = lab.subset(fit_pos), lab.subset(test_pos)
    y_fit = clean_labels(fit.column(label))
    tr, va = stratified_split(y_fit, 0.1, 0)
    classes = np.asarray(sorted(set(y_fit[tr].tolist())), dtype=object)
    idx = {c: i for i, c in enumerate(classes)}
    va = va[np.asarray([y_fit[i] in idx for i in va])]
    y_test = clean_labels(test.column(label))
    kt = np.asarray([c in idx for c in y_test])
    yi_tr, yi_va = np.asarray([idx[c] for c in y_fit[tr]]), np.asarray([idx[c] for c in y_fit[va]])
    yi_te = np.asarray([idx[c] for c in y_test[kt]])

    sample_ids = set(map(str, cat.column("id")))
    outside = full.subset(np.flatnonzero([str(i) not in sample_ids for i in full.column("id")]))
    y_out = clean_labels(outside.column(label))
    keep = np.flatnonzero([c in idx for c in y_out])
    outside, yi_out = outside.subset(keep), np.asarray([idx[c] for c in y_out[keep]])
    order = np.random.default_rng(0).permutation(len(yi_out))

    enc = create("efficientnet-lite0.stages")
    F = embed_images(enc, fit, cache_dir=args.cache)
    T = embed_images(enc, test, cache_dir=args.cache)[kt]
    sizes = [int(s) for s in args.sizes.split(",")]
    E = embed_images(enc, outside, cache_dir=args.cache) if max(sizes) > len(tr) else None
    for n in sizes:
        if n <= len(tr):
            sel = np.random.default_rng(1).permutation(len(tr))[:n]
            X, y = F[tr][sel], yi_tr[sel]
        else:
            k = order[: n - len(tr)]
            X, y = np.concatenate([F[tr], E[k]]), np.concatenate([yi_tr, yi_out[k]])
        for cand in args.candidates.split(","):
            t0 = time.time()
            if cand == "head":
                m = MLPHead(seed=args.seed).fit(X, y, class_weights(y, len(classes), 0.5)[y], eval_set=([F[va]], yi_va))
            else:
                m = ProbeHead(C=0.5).fit(X, y)
            P = np.zeros((len(T), len(classes)))
            P[:, np.asarray(m.classes_)] = m.predict_proba(T)  # a small subset may miss some classes
            mt = classification_metrics(yi_te, P.argmax(1), list(classes), P)
            row = {"train_items": int(len(y)), "candidate": cand, "seed": args.seed,
                   "best_epoch": getattr(m, "best_epoch_", None), "test_items": int(len(yi_te)),
                   "test_accuracy": round(mt["accuracy"], 4), "test_macro_f1": round(mt["macro_f1"], 4),
                   "ci": metric_cis(yi_te, P.argmax(1), len(classes)), "fit_s": round(time.time() - t0),
                   "load": round(os.getloadavg()[0], 1)}
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
