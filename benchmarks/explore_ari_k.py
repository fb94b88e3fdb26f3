"""ARI of KMeans clusters against Myntra labels at several k (same sample and settings as sweep_k).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/explore_ari_k.py [N] [K,K,...]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from fashionlens.catalog import load_catalog
    from fashionlens.embed import embed_images
    from fashionlens.encoders.registry import create
    from fashionlens.explore.clusters import label_agreement

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    ks = [int(k) for k in sys.argv[2].split(",")] if len(sys.argv) > 2 else [4, 8, 20, 45, 141]
    myntra = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"
    cat = load_catalog(myntra, check_images=False).sample(n, seed=0)
    X = embed_images(create("efficientnet-lite0"), cat, progress=False)  # unit rows, as sweep_k uses
    with threadpool_limits(1):
        for k in ks:
            lab = KMeans(k, n_init=3, random_state=0).fit(X).labels_
            ari = {c: round(label_agreement(lab, cat.column(c))["ari"], 3)
                   for c in ("masterCategory", "subCategory", "articleType")}
            print(k, ari, flush=True)


if __name__ == "__main__":
    main()
