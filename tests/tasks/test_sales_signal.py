"""Known-signal and null checks on real Myntra photos with a SYNTHETIC sales target.

The target is f(articleType) + noise, where articleType is what the photo shows but is NOT among the
metadata columns: a model with `image` features must recover it and the paired test must say so;
on a pure-noise target the test must not cry wolf.
"""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.catalog import load_catalog
from fashionlens.evaluation.regression import r2
from fashionlens.evaluation.statistics import paired_bootstrap
from fashionlens.tasks.sales import (
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

    cat = load_catalog(myntra_dir, check_images=False)
    cat = cat.subset(np.flatnonzero(cat.df["articleType"].isin(TYPES).to_numpy())).sample(300, seed=0)
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
    X = build_features(cat, "image", embeddings=emb)
    est = SalesRegressor(model="ridge", alpha=1.0).fit(X.iloc[train], target.values[train])
    assert r2(target.values[test], est.predict(X.iloc[test])) > 0.6
    res = compare(cat, target, FeatureSpec.parse("baseColour,usage,image"), FeatureSpec.parse("baseColour,usage"),
                  "ridge", train, test, embeddings=emb, params={"alpha": 1.0})
    assert res["diff"] < 0 and res["ci95"][1] < 0
    assert res["p_value"] < 0.01 and res["p_permutation"] < 0.01
    assert res["n_test"] == len(test) and res["metric"] == "wape"


def test_pure_noise_target_does_not_cry_wolf(signal):
    """200 null trials: A = the photos, B = the same photos shuffled across items; the target is noise,
    so neither can be better. At alpha = 0.05 the bootstrap must reject in 2%..8% of trials."""
    cat, emb = signal
    feats = build_features(cat, "image", embeddings=emb, pca=16).to_numpy()
    rng = np.random.default_rng(42)
    train, test = split_catalog(cat, test_size=0.4, seed=0)
    n_trials, hits = 200, 0
    for t in range(n_trials):
        y = rng.gamma(2.0, 50.0, size=len(cat))
        shuffled = feats[rng.permutation(len(feats))]
        losses = []
        for X in (feats, shuffled):
            est = SalesRegressor(model="ridge", pca=None, alpha=10.0).fit(X[train], y[train])
            losses.append(item_losses(y[test], est.predict(X[test]), "wape"))
        r = paired_bootstrap(losses[0][0], losses[1][0], losses[0][1], n_boot=500, seed=t)
        hits += r.p_value < 0.05
    assert 0.02 <= hits / n_trials <= 0.08, hits / n_trials
