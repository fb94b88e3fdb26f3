import numpy as np
import pytest

from fashionlens.evaluation.metrics import (
    label_chance,
    label_precision_at_k,
    metrics_from_ranks,
    relevance_chance,
    relevance_metrics,
    relevance_scores,
    relevant_ranks,
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


def _slow_ranking(q, g, rel):
    """Brute force: sort the whole gallery by score, tied distractors ahead of tied relevant items."""
    scores = [float(q @ x) for x in g]
    return sorted(range(len(g)), key=lambda j: (-scores[j], bool(rel[j])))


@pytest.mark.parametrize(("n_gallery", "k"), [(40, 10), (6, 10), (40, 3)])
def test_relevant_ranks_match_brute_force_with_ties_and_distractors(n_gallery, k):
    rng = np.random.default_rng(n_gallery + k)
    q = rng.integers(-1, 2, size=(25, 3)).astype(float)  # few distinct values: many tied scores
    g = rng.integers(-1, 2, size=(n_gallery, 3)).astype(float)
    qg = rng.integers(0, 6, size=25)
    gg = rng.integers(-1, 6, size=n_gallery)  # -1: a distractor, relevant to nobody
    first, top = relevant_ranks(q, g, qg, gg, k=k, block=7)
    for i in range(25):
        rel = gg == qg[i]
        order = _slow_ranking(q[i], g, rel)
        hits = [r for r, j in enumerate(order) if rel[j]]
        assert first[i] == (hits[0] if hits else n_gallery)
        assert top[i].tolist() == [r in hits for r in range(k)]


def test_relevant_ranks_constant_scorer_gets_no_credit():
    gallery_groups = np.r_[np.full(97, -1), [0, 0, 0]]
    first, top = relevant_ranks(np.ones((1, 2)), np.ones((100, 2)), np.array([0]), gallery_groups)
    assert first[0] == 97 and not top.any()


def test_relevance_scores_reference():
    first = np.array([0, 3, 12])
    top = np.zeros((3, 10), dtype=bool)
    top[0, [0, 4]] = True  # two relevant, at ranks 0 and 4
    top[1, 3] = True
    s = relevance_scores(first, top, np.array([2, 1, 3]))
    assert s["recall@1"].tolist() == [1, 0, 0] and s["recall@5"].tolist() == [1, 1, 0]
    assert s["recall@10"].tolist() == [1, 1, 0]
    np.testing.assert_allclose(s["mrr"], [1, 1 / 4, 1 / 13])
    d = 1 / np.log2(np.arange(2, 12))
    np.testing.assert_allclose(s["ndcg@10"], [(d[0] + d[4]) / (d[0] + d[1]), d[3] / d[0], 0])


def test_relevance_chance_equals_exact_enumeration():
    import itertools

    g = 7
    for n in (1, 2, 3):
        vals = []
        for pos in itertools.combinations(range(g), n):  # every placement of the n relevant items
            top = np.zeros((1, 4), dtype=bool)
            top[0, [p for p in pos if p < 4]] = True
            vals.append({m: v[0] for m, v in relevance_scores(np.array([min(pos)]), top, np.array([n]), (1, 3, 5)).items()})
        chance = relevance_chance(np.array([n]), g, ks=(1, 3, 5), ndcg_k=4)
        for m in ("recall@1", "recall@3", "recall@5", "mrr", "ndcg@4"):
            assert chance[m][0] == pytest.approx(np.mean([v[m] for v in vals])), (n, m)


def test_label_chance_and_topk_exclude_reference():
    gallery = np.array(["a", "a", "b", "a", "c"])
    np.testing.assert_allclose(label_chance(np.array(["a", "c"]), gallery), [2 / 4, 0 / 4])
    np.testing.assert_allclose(label_chance(np.array(["b"]), gallery, in_gallery=False), [1 / 5])
    rng = np.random.default_rng(3)
    g, own = rng.normal(size=(30, 4)), np.array([29, 3, 17])
    nb = topk(g[own], g, 4, exclude=own, block=2)
    sc = g[own] @ g.T
    sc[np.arange(3), own] = -np.inf
    assert (nb == np.argsort(-sc, axis=1)[:, :4]).all()
