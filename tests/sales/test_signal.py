"""Known-signal and null checks on real Myntra photos with a SYNTHETIC sales target.

The target is f(articleType) + noise, where articleType is what the photo shows but is NOT among the
metadata columns: a model with `image` features must recover it and the paired test must say so;
on a pure-noise target the test must not cry wolf.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashionlens.catalog import validate
from fashionlens.evaluation.regression import r2
from fashionlens.evaluation.statistics import paired_bootstrap
from fashionlens.sales.forecast import (
    FeatureSpec,
    SalesRegressor,
    build_features,
    compare,
    item_losses,
    resolve_target,
    split_catalog,
)

TYPES = ["Tshirts", "Shirts", "Casual Shoes", "Watches", "Handbags", "Sports Shoes", "Kurtas", "Heels"]


@pytest.fixture(scope="module")
def signal(myntra_dir, tmp_path_factory):
    """300 Myntra items of 8 article types, their efficientnet-lite0 embeddings, a synthetic target."""
    from fashionlens.embed import embed_images
    from fashionlens.encoders.registry import create

    # read only the 300 rows we use (validating all 39k rows costs seconds on a busy machine)
    df = pd.read_csv(myntra_dir / "styles.csv", dtype=str)
    df = df[df["articleType"].isin(TYPES)].sample(300, random_state=0).rename(columns={"productDisplayName": "text"})
    df["image"] = [str(myntra_dir / "images" / f"{i}.jpg") for i in df["id"]]
    cat = validate(df[["id", "image", "text", "articleType", "baseColour", "usage"]], myntra_dir,
                   source="myntra sample", check_images=False)
    emb = embed_images(create("efficientnet-lite0"), cat, cache_dir=tmp_path_factory.mktemp("emb"), progress=False)
    rng = np.random.default_rng(0)
    level = dict(zip(TYPES, rng.uniform(20, 200, len(TYPES)), strict=True))
    cat.df["sales"] = cat.df["articleType"].map(level) + rng.normal(0, 15, len(cat))
    cat.df["has_image"] = True
    return cat, emb


def test_image_features_recover_a_signal_the_metadata_lacks(signal):
    cat, emb = signal
    target = resolve_target(cat, "sales")
    train, test = split_catalog(cat, test_size=0.4, seed=1)
    fit_r2 = {}
    for spec in ("image", "baseColour"):
        X = build_features(cat, spec, embeddings=emb)
        est = SalesRegressor(model="ridge", alpha=1.0).fit(X.iloc[train], target.values[train])
        fit_r2[spec] = r2(target.values[test], est.predict(X.iloc[test]))
    assert fit_r2["image"] > 0.3 and fit_r2["image"] > fit_r2["baseColour"] + 0.2, fit_r2
    res = compare(cat, target, FeatureSpec.parse("baseColour,image"), FeatureSpec.parse("baseColour"),
                  "ridge", train, test, embeddings=emb, params={"alpha": 1.0})
    assert res["diff"] < 0 and res["ci95"][1] < 0, res
    assert res["p_value"] < 0.01 and res["p_permutation"] < 0.01, res
    assert res["n_test"] == len(test) and res["metric"] == "wape"


def test_pure_noise_target_does_not_cry_wolf(signal):
    """200 null trials on a pure-noise target: A = a model's predictions for the items' own photos,
    B = the same predictions handed to the test items in shuffled order. The target is independent
    of the photos, so A and B have exactly the same expected error; at alpha = 0.05 the paired
    bootstrap must reject in 2%..8% of the trials."""
    cat, emb = signal
    X = build_features(cat, "image", embeddings=emb, pca=16).to_numpy()
    rng = np.random.default_rng(42)
    train, test = split_catalog(cat, test_size=0.4, seed=0)
    n_trials, hits = 200, 0
    for t in range(n_trials):
        y = rng.gamma(2.0, 50.0, size=len(cat))
        pred = SalesRegressor(model="ridge", pca=None, alpha=1.0).fit(X[train], y[train]).predict(X[test])
        loss_a, denom = item_losses(y[test], pred, "wape")
        loss_b, _ = item_losses(y[test], pred[rng.permutation(len(pred))], "wape")
        hits += paired_bootstrap(loss_a, loss_b, denom, n_boot=500, seed=t).p_value < 0.05
    assert 0.02 <= hits / n_trials <= 0.08, hits / n_trials
