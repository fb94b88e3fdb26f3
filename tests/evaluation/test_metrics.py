import numpy as np
import pytest

from fashionlens.evaluation.metrics import (
    label_precision_at_k,
    metrics_from_ranks,
    relevance_metrics,
    target_ranks,
    topk,
)


def _slow_rank(q, g, t):
    scores = [float(q @ x) for x in g]
    order = sorted(range(len(g)), key=lambda j: -scores[j])
    target = scores[t]
    return sum(1 for j in order if scores[j] >= target) - 1


def test_ranks_match_slow_reference():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    t = rng.integers(0, 50, size=30)
    fast = target_ranks(q, g, t, block=7)
    assert fast.tolist() == [_slow_rank(q[i], g, t[i]) for i in range(30)]


def test_ties_count_against_the_model():
    q = np.ones((3, 2))
    g = np.ones((100, 2))
    ranks = target_ranks(q, g, [0, 5, 99])
    assert (ranks == 99).all()
    assert metrics_from_ranks(ranks, 100)["recall@10"] == 0.0


def test_metrics_from_ranks_reference():
    ranks = np.array([0, 1, 4, 9, 10, 50])
    m = metrics_from_ranks(ranks, gallery_size=200)
    assert m["recall@1"] == pytest.approx(1 / 6)
    assert m["recall@5"] == pytest.approx(3 / 6)
    assert m["recall@10"] == pytest.approx(4 / 6)
    assert m["mrr"] == pytest.approx(np.mean([1, 1 / 2, 1 / 5, 1 / 10, 1 / 11, 1 / 51]))
    ref_ndcg = sum(1 / np.log2(r + 2) for r in ranks if r < 10) / 6
    assert m["ndcg@10"] == pytest.approx(ref_ndcg)
    assert m["chance@10"] == pytest.approx(10 / 200)


def test_random_embeddings_score_near_chance():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2000, 16))
    g = rng.normal(size=(500, 16))
    m = metrics_from_ranks(target_ranks(q, g, rng.integers(0, 500, 2000)), 500)
    assert abs(m["recall@10"] - m["chance@10"]) < 0.015


def test_topk_matches_argsort_and_excludes_self():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 6))
    nb = topk(x, x, 5, exclude_self=True, block=9)
    sc = x @ x.T
    np.fill_diagonal(sc, -np.inf)
    assert (nb == np.argsort(-sc, axis=1)[:, :5]).all()


def test_label_precision_reference():
    labels = np.array(["a", "a", "b", "b"])
    nb = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    assert label_precision_at_k(nb, labels) == pytest.approx(0.5)


def test_relevance_metrics_reference():
    rel = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    m = relevance_metrics(rel, np.array([2, 1]), k=4)
    assert m["hit@4"] == 0.5
    assert m["precision@4"] == pytest.approx((2 / 4 + 0) / 2)
    assert m["map@4"] == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert m["ndcg@4"] == pytest.approx(((1 + 1 / np.log2(4)) / ideal) / 2)
