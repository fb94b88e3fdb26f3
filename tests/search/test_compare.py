"""N-model retrieval comparison: metrics, bootstrap CIs, per-category, figures."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.search.compare import (
    bootstrap_ci,
    evaluate_embeddings,
    markdown_table,
    paired_vs,
    per_category_table,
    save_tsne,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _slow_bootstrap(v, n_boot, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))
    means = [float(np.mean([v[j] for j in row])) for row in idx]
    return tuple(np.quantile(means, [0.025, 0.975]))


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_bootstrap_ci_matches_slow_reference_and_covers_the_mean():
    v = np.random.default_rng(0).random(50) < 0.3
    lo, hi = bootstrap_ci(v.astype(float), n_boot=300, seed=3)
    np.testing.assert_allclose((lo, hi), _slow_bootstrap(v.astype(float), 300, 3))
    assert lo <= v.mean() <= hi and hi - lo > 0.1


def test_perfect_and_random_models_and_image_to_image_reference():
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 5, n).astype(str)
    centres = rng.normal(size=(5, 32))
    img = _unit(centres[labels.astype(int)] + 0.5 * rng.normal(size=(n, 32)))
    perfect = evaluate_embeddings("perfect", img, img.copy(), labels, categories=labels, min_category=10)
    assert perfect.value("text→image", "recall@1") == 1.0
    assert perfect.metrics["text→image"]["recall@10"][1:] == (1.0, 1.0)
    rand = evaluate_embeddings("random", img, _unit(rng.normal(size=(n, 32))), labels, categories=labels)
    r10, lo, hi = rand.metrics["text→image"]["recall@10"]
    assert lo <= rand.chance["text→image"] + 0.03 and r10 < 0.12
    # image→image precision@10 against a slow loop
    prec = []
    for i in range(n):
        s = img @ img[i]
        s[i] = -np.inf
        top = np.argsort(-s)[:10]
        prec.append(np.mean(labels[top] == labels[i]))
    assert perfect.value("image→image", "precision@10") == pytest.approx(np.mean(prec))
    assert perfect.value("image→image", "precision@10") > 2 * perfect.chance["image→image"]
    assert set(perfect.per_category) == set(np.unique(labels)) and all(v[0] == 1.0 for v in perfect.per_category.values())


def test_table_lists_every_model_with_cis_and_paired_diff(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    img = _unit(rng.normal(size=(n, 16)))
    good = evaluate_embeddings("good", img, _unit(img + 0.3 * rng.normal(size=(n, 16))), n_boot=200)
    bad = evaluate_embeddings("bad", img, _unit(img + 3.0 * rng.normal(size=(n, 16))), n_boot=200)
    diff = paired_vs(good, bad)
    assert diff["diff"] > 0 and diff["ci_low"] > 0 and diff["p_value"] < 0.05
    table = markdown_table([bad, good], baseline="bad")
    assert "| good |" in table and "| bad |" in table and "Chance" in table and "p=" in table
    assert "[" in table.splitlines()[2]
    assert "category" in per_category_table([good, bad])
    png = save_tsne(img, rng.integers(0, 3, n), tmp_path / "tsne.png", max_points=100)
    assert png.stat().st_size > 1000


def test_hits_grid_marks_the_right_photo(tmp_path):
    from fashionlens.search.compare import save_hits_grid
    from tests.train.test_strategies import make_toy

    cat = make_toy(tmp_path / "toy", n=30)
    emb = _unit(np.random.default_rng(0).normal(size=(30, 8)))
    out = save_hits_grid(cat, emb, emb, tmp_path / "hits.png", n_queries=2)
    assert out.is_file() and out.stat().st_size > 1000
