"""Can Myntra's "Free Items" master category be told apart at all? (issue 20's macro-F1 ceiling)

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/categorize_free_items.py --out /tmp/free \
        --cache $FASHIONLENS_CACHE

One-vs-rest logistic regressions, 5-fold cross-validated over the WHOLE catalog (39,616 items, 89 Free
Items), on the photos (Lite0 160 px, the cached vectors) and on the product names (TF-IDF words and
character n-grams). For each, the best F1 over every threshold, the threshold picked on the very scores
it is judged on: an upper bound for a classifier that has seen 4x the 12k protocol's data. Also: how
often a Free Item's 10 nearest photos hold another Free Item, and a grid of Free Items beside their
nearest photo of another master category (free_items_neighbours.png).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def best_f1(y: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    p, r, _ = precision_recall_curve(y, scores)
    f = 2 * p * r / np.maximum(p + r, 1e-12)
    i = int(f.argmax())
    return {"average_precision": round(float(average_precision_score(y, scores)), 4),
            "best_f1_any_threshold": round(float(f[i]), 3), "precision": round(float(p[i]), 3),
            "recall": round(float(r[i]), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/myntra"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache/fashionlens/embeddings"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import NearestNeighbors

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import embed_images
    from fashionlens.encoders import create
    from fashionlens.explore.grids import save_grid

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cat = load_catalog(args.data, check_images=False)
    master = np.asarray(cat.column("masterCategory"), dtype=object)
    y = (master == "Free Items").astype(int)
    names = [str(s) for s in cat.column("text")]
    X = embed_images(create("efficientnet-lite0"), cat, cache_dir=args.cache)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    res: dict = {"items": len(y), "free_items": int(y.sum()), "base_rate": round(float(y.mean()), 5)}

    def scores(model, features) -> np.ndarray:
        return cross_val_predict(model, features, y, cv=cv, method="decision_function")

    for C in (0.1, 1.0):
        clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        res[f"photos, Lite0 160 px, logistic C={C}"] = best_f1(y, scores(clf, X))
        print(json.dumps(res), flush=True)
    T = hstack([TfidfVectorizer(ngram_range=(1, 2)).fit_transform(names),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2).fit_transform(names)]).tocsr()
    for C in (1.0, 10.0):
        clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
        res[f"names, TF-IDF words + char 2-5 grams, logistic C={C}"] = best_f1(y, scores(clf, T))

    free = np.flatnonzero(y)
    nn = NearestNeighbors(n_neighbors=11, metric="cosine").fit(X)
    _, ind = nn.kneighbors(X[free])
    neigh = y[ind[:, 1:]]
    res["free items with another free item among their 10 nearest photos"] = int((neigh.sum(1) > 0).sum())
    res["share of free items among those 10 neighbours"] = round(float(neigh.mean()), 3)
    (out / "free_items.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))

    # the grid: 12 Free Items (every 7th, a spread over the catalog), each beside its nearest other-category photo
    images, titles = [], []
    paths = cat.column("image")
    for k in range(0, len(free), max(1, len(free) // 12))[:12]:
        i = free[k]
        j = next(int(n) for n in ind[k, 1:] if master[n] != "Free Items")
        images += [paths[i], paths[j]]
        titles += [f"Free Items: {names[i]}", f"{master[j]}: {names[j]}"]
    save_grid(images, out / "free_items_neighbours.png", titles, ncols=6, thumb=112,
              heading="Free Items (left of each pair) and the nearest photo of another master category")


if __name__ == "__main__":
    main()
