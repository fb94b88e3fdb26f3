"""KMeans sweep, cluster composition, label agreement and target per cluster on small synthetic data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from fashionlens.explore import clusters as cl


def _blobs(n_per: int = 40, k: int = 3, dim: int = 16, spread: float = 0.08, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    y = np.repeat(np.arange(k), n_per)
    X = centres[y] + spread * rng.normal(size=(len(y), dim)) * np.linalg.norm(centres, axis=1).mean()
    return X.astype(np.float32), y


def test_sweep_finds_the_planted_clusters() -> None:
    X, y = _blobs(k=4)
    sweep = cl.sweep_k(X, ks=range(2, 9), min_k=2, progress=False)
    assert sweep.k == 4
    assert sweep.elbow_k == 4
    assert cl.label_agreement(sweep.labels_, y)["ari"] == pytest.approx(1.0)
    assert len(sweep.inertia) == 7 and all(a >= b for a, b in zip(sweep.inertia, sweep.inertia[1:], strict=False))
    assert "k=4" in sweep.reason and sweep.best_silhouette > 0.5
    assert sweep.centers_.shape == (4, X.shape[1])


def test_min_k_and_bad_range() -> None:
    X, _ = _blobs(k=2)
    assert cl.sweep_k(X, ks=range(2, 6), min_k=3, progress=False).k >= 3
    with pytest.raises(ValueError, match="no k"):
        cl.sweep_k(X[:5], ks=[10, 20], progress=False)


def test_elbow_of_a_known_curve() -> None:
    ks = list(range(1, 11))
    inertia = [100, 60, 30, 12, 10, 9, 8, 7, 6, 5]
    assert cl.elbow_k(ks, inertia) == 4


def _slow_purity(labels, y) -> float:
    total = 0
    for c in set(labels):
        members = [y[i] for i in range(len(y)) if labels[i] == c]
        total += max(members.count(v) for v in set(members))
    return total / len(y)


def test_purity_and_agreement_against_reference() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=200)
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, size=200)]
    assert cl.purity(labels, y) == pytest.approx(_slow_purity(list(labels), list(y)))
    ag = cl.label_agreement(labels, y)
    assert abs(ag["ari"]) < 0.05  # random clusters: ARI near 0
    assert ag["n_classes"] == 3
    with pytest.raises(ValueError, match="labels for"):
        cl.label_agreement(labels, y[:10])


def test_composition_rows_sum_to_one_and_fold_rare_values() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    vals = ["Shirts", "Shirts", "Shoes", "Watches", "Belts", None]
    comp = cl.composition(labels, vals, top=2)
    np.testing.assert_allclose(comp.sum(axis=1).to_numpy(), 1.0)
    assert list(comp.columns)[-1] == "other" and len(comp.columns) == 3
    assert comp.loc[0, "Shirts"] == pytest.approx(2 / 3)


def test_target_by_cluster_means_and_cis() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 300)
    sales = np.concatenate([rng.exponential(10, 300), rng.exponential(30, 300)])
    sales[5] = np.nan  # missing targets are ignored
    t = cl.target_by_cluster(labels, sales)
    assert list(t["n"]) == [299, 300]
    assert t.loc[0, "mean"] == pytest.approx(np.nanmean(sales[:300]))
    assert (t["ci_low"] < t["mean"]).all() and (t["mean"] < t["ci_high"]).all()
    assert t.loc[0, "ci_high"] < t.loc[1, "ci_low"]  # a 3x difference on 300 items is resolved


def test_representatives_are_nearest_the_centre() -> None:
    X, _ = _blobs(k=3)
    sweep = cl.sweep_k(X, ks=[3], min_k=2, progress=False)
    reps = cl.representatives(X, sweep.labels_, sweep.centers_, n=5)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    for c, idx in reps.items():
        members = np.flatnonzero(sweep.labels_ == c)
        sims = Xn[members] @ (sweep.centers_[c] / np.linalg.norm(sweep.centers_[c]))
        assert set(idx) == set(members[np.argsort(-sims)[:5]])


def test_plots_render(tmp_path) -> None:
    X, y = _blobs(k=3)
    sweep = cl.sweep_k(X, ks=range(2, 6), min_k=2, progress=False)
    figs = [cl.plot_sweep(sweep),
            cl.plot_composition(cl.composition(sweep.labels_, y.astype(str)), "by class"),
            cl.plot_target(cl.target_by_cluster(sweep.labels_, X[:, 0]), "sales")]
    for fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 5000  # a real picture, not an empty canvas
    assert isinstance(cl.composition(sweep.labels_, y), pd.DataFrame)
