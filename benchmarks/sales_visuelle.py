"""VISUELLE benchmark: does the product photo help forecast 12-week sales of new products?

Trains on the earlier seasons (SS17..AW18), tests on SS19 + AW19, for the 12-week total and the weekly
curve, with baselines (mean, per-category mean) and each model on metadata-only, image-only and
image+metadata features; paired-bootstrap CIs of the WAPE differences, Holm-corrected p-values.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sales_visuelle.py --out docs/bench/sales_visuelle.md
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

META = "category,color,fabric,season_type"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/visuelle")
    ap.add_argument("--encoder", default="efficientnet-lite0")
    ap.add_argument("--cache", default=None, help="embedding cache dir (default: the fashionlens cache)")
    ap.add_argument("--models", default="knn,ridge,rf,gbr,lgbm")
    ap.add_argument("--n-boot", type=int, default=5000)
    ap.add_argument("--hpo", type=int, default=0, help="Optuna trials per model (5-fold CV on train seasons)")
    ap.add_argument("--out", default=None, help="write the markdown tables here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from fashionlens.embed import DEFAULT_CACHE, embed_images
    from fashionlens.encoders.registry import create
    from fashionlens.evaluation.regression import mae, wape
    from fashionlens.evaluation.statistics import holm, paired_bootstrap
    from fashionlens.sales.data import load_visuelle
    from fashionlens.sales.forecast import (
        FeatureSpec,
        baselines,
        build_features,
        item_losses,
        make_estimator,
        resolve_target,
        split_catalog,
        tune,
    )

    t0 = time.time()
    cat = load_visuelle(args.data)
    enc = create(args.encoder)
    emb = embed_images(enc, cat, cache_dir=args.cache or DEFAULT_CACHE, progress=False)
    t_embed = time.time() - t0
    train, test = split_catalog(cat, test_where={"season": ["SS19", "AW19"]})
    specs = {"metadata-only": FeatureSpec.parse(META), "image-only": FeatureSpec.parse("image"),
             "image+metadata": FeatureSpec.parse(META + ",image")}
    feats = {k: build_features(cat, s, embeddings=emb) for k, s in specs.items()}
    group = build_features(cat, FeatureSpec(("category",)))
    lines = [f"Data: {len(cat)} VISUELLE products; train {len(train)} (SS17..AW18), test {len(test)} "
             f"(SS19+AW19). Encoder {args.encoder}; metadata = {META}. Embedding took {t_embed:.0f} s."]
    comparisons = []
    for tname in ("total", "weekly"):
        target = resolve_target(cat, tname)
        y = target.values
        lines += ["", f"### Target: {'12-week total' if tname == 'total' else 'weekly curve (12 values per item)'}",
                  "", "| model | features | WAPE | MAE |", "|---|---|---|---|"]
        for name, p in baselines(target, group.iloc[train], group.iloc[test], y[train], "category").items():
            lines.append(f"| baseline | {name} | {wape(y[test], p):.3f} | {mae(y[test], p):.1f} |")
        for model in args.models.split(","):
            preds = {}
            for k, X in feats.items():
                params = {}
                if args.hpo and tname == "total":
                    params, _ = tune(make_estimator(model, "regression"), X.iloc[train], y[train], args.hpo,
                                     study_name=f"{model}-{k}", seed=0)
                est = make_estimator(model, "regression", **params).fit(X.iloc[train], y[train])
                preds[k] = est.predict(X.iloc[test])
                lines.append(f"| {model} | {k} | {wape(y[test], preds[k]):.3f} | {mae(y[test], preds[k]):.1f} |")
            la, den = item_losses(y[test], preds["metadata-only"], "wape")
            for k in ("image-only", "image+metadata"):
                lk, _ = item_losses(y[test], preds[k], "wape")
                r = paired_bootstrap(lk, la, den, n_boot=args.n_boot, seed=0)
                comparisons.append((tname, model, f"{k} vs metadata-only", r))
    lines += ["", "### Paired bootstrap: WAPE(image features) - WAPE(metadata-only) on the test items",
              "", "Negative = the photo helps. p: two-sided bootstrap p-value; p (Holm): corrected over all "
              f"{len(comparisons)} comparisons in this table.", "",
              "| target | model | comparison | diff WAPE | 95% CI | p | p (Holm) |", "|---|---|---|---|---|---|---|"]
    adj = holm([c[3].p_value for c in comparisons])
    for (tname, model, what, r), pa in zip(comparisons, adj, strict=True):
        lines.append(f"| {tname} | {model} | {what} | {r.diff:+.3f} | [{r.ci95[0]:+.3f}, {r.ci95[1]:+.3f}] "
                     f"| {r.p_value:.3f} | {pa:.3f} |")
    lines += ["", f"Total run time {time.time() - t0:.0f} s (HPO trials per model: {args.hpo})."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
