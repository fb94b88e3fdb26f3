"""Retrieval metrics as pure functions on arrays, computed over the whole gallery (block-wise scoring)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def target_ranks(queries: np.ndarray, gallery: np.ndarray, targets: Sequence[int], block: int = 1024) -> np.ndarray:
    """0-based rank of each query's one right answer among *all* gallery items (cosine / dot).

    Ties count against the model (a tied item is ranked ahead), so a constant scorer gets no credit.
    Computed in blocks so a 40k x 40k problem never materialises the full score matrix.
    """
    targets = np.asarray(targets)
    ranks = np.empty(len(queries), dtype=np.int64)
    for s in range(0, len(queries), block):
        sc = queries[s : s + block] @ gallery.T
        t = sc[np.arange(len(sc)), targets[s : s + block]][:, None]
        ranks[s : s + block] = (sc >= t).sum(axis=1) - 1
    return ranks


def metrics_from_ranks(ranks: np.ndarray, gallery_size: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k, MRR, NDCG@10, mAP@10 for single-answer queries, plus chance@10."""
    ranks = np.asarray(ranks)
    out = {f"recall@{k}": float(np.mean(ranks < k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / (ranks + 1)))
    out["ndcg@10"] = float(np.mean(np.where(ranks < 10, 1.0 / np.log2(ranks + 2), 0.0)))
    out["map@10"] = float(np.mean(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0)))
    out["chance@10"] = chance_at_k(10, gallery_size)
    out["n_queries"] = int(len(ranks))
    out["gallery_size"] = int(gallery_size)
    return out


def chance_at_k(k: int, gallery_size: int) -> float:
    """Recall@k of a random ranking with one right answer."""
    return min(1.0, k / gallery_size)


def per_query_scores(ranks: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """Per-query values whose means are the metrics (for bootstrap CIs and paired tests)."""
    ranks = np.asarray(ranks)
    return {
        f"recall@{k}": (ranks < k).astype(float),
        "mrr": 1.0 / (ranks + 1),
        "ndcg@10": np.where(ranks < 10, 1.0 / np.log2(ranks + 2), 0.0),
    }


def topk(queries: np.ndarray, gallery: np.ndarray, k: int, exclude_self: bool = False, block: int = 1024,
         exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Indices (q, k) of the k best gallery items per query, best first.

    `exclude_self`: query i is gallery item i; `exclude`: each query's own gallery position (a query
    photo inside a larger gallery). Either way that item is never its own neighbour.
    """
    if exclude_self:
        exclude = np.arange(len(queries))
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), block):
        sc = queries[s : s + block] @ gallery.T
        if exclude is not None:
            sc[np.arange(len(sc)), np.asarray(exclude)[s : s + block]] = -np.inf
        part = np.argpartition(-sc, kth=min(k, sc.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(sc, part, axis=1).argsort(axis=1)[:, ::-1]
        out[s : s + block] = np.take_along_axis(part, order, axis=1)
    return out


def label_precision_at_k(neighbours: np.ndarray, labels: np.ndarray, query_labels: np.ndarray | None = None) -> float:
    """Mean share of each query's neighbours that carry the query's label (image→image precision@k)."""
    labels = np.asarray(labels)
    q = labels if query_labels is None else np.asarray(query_labels)
    return float(np.mean(labels[neighbours] == q[:, None]))


def relevance_metrics(relevant: np.ndarray, n_relevant: np.ndarray, k: int = 10) -> dict[str, float]:
    """Metrics for queries with several right answers.

    `relevant` (q, >=k) bool: is the i-th retrieved item relevant; `n_relevant` (q,): how many exist.
    """
    rel = np.asarray(relevant, dtype=float)[:, :k]
    n_rel = np.maximum(np.asarray(n_relevant, dtype=float), 1e-12)
    hits = rel.cumsum(axis=1)
    prec = hits / np.arange(1, k + 1)
    ap = (prec * rel).sum(axis=1) / np.minimum(n_rel, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([disc[: int(min(n, k))].sum() for n in n_rel])
    return {
        f"hit@{k}": float(np.mean(hits[:, -1] > 0)),
        f"precision@{k}": float(np.mean(prec[:, -1])),
        f"recall@{k}": float(np.mean(hits[:, -1] / n_rel)),
        f"map@{k}": float(np.mean(ap)),
        f"ndcg@{k}": float(np.mean((rel * disc).sum(axis=1) / np.maximum(ideal, 1e-12))),
    }


def relevant_ranks(queries: np.ndarray, gallery: np.ndarray, query_groups: np.ndarray, gallery_groups: np.ndarray,
                   k: int = 10, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Where each query's relevant gallery items land when it ranks the *whole* gallery (cosine / dot).

    Gallery item j is relevant to query i when `gallery_groups[j] == query_groups[i]`; a negative
    group (e.g. -1 for training photos) is never relevant: such items are distractors only.
    Returns `first` (q,): 0-based rank of the best-ranked relevant item (len(gallery) when there is
    none), and `top` (q, k) bool: is the item at rank r relevant. Ties count against the model (tied
    distractors rank ahead), so a constant scorer gets no credit. Scored `block` queries at a time:
    2,000 x 40,000 never holds more than a (block, gallery) matrix.
    """
    query_groups, gallery_groups = np.asarray(query_groups), np.asarray(gallery_groups)
    if len(query_groups) != len(queries) or len(gallery_groups) != len(gallery):
        raise ValueError(f"groups must have one entry per row: {len(query_groups)} for {len(queries)} queries, "
                         f"{len(gallery_groups)} for {len(gallery)} gallery items")
    kk = min(k, len(gallery))
    first = np.empty(len(queries), dtype=np.int64)
    top = np.zeros((len(queries), k), dtype=bool)
    for s in range(0, len(queries), block):
        sc = queries[s : s + block] @ gallery.T
        qg = query_groups[s : s + block, None]
        rel = (gallery_groups[None, :] == qg) & (qg >= 0)
        rel_sc, irr_sc = np.where(rel, sc, -np.inf), np.where(rel, -np.inf, sc)
        best = rel_sc.max(axis=1)
        first[s : s + block] = np.where(np.isfinite(best), (irr_sc >= best[:, None]).sum(axis=1), len(gallery))
        # the i-th best relevant item sits behind i relevant ones and every distractor scoring at least as
        # high; only the kk best of each matter for ranks below k
        rel_top = -np.sort(np.partition(-rel_sc, kk - 1, axis=1)[:, :kk], axis=1)
        irr_top = -np.sort(np.partition(-irr_sc, kk - 1, axis=1)[:, :kk], axis=1)
        rank = np.arange(kk) + (irr_top[:, None, :] >= rel_top[:, :, None]).sum(axis=2)
        rows, cols = np.nonzero(np.isfinite(rel_top) & (rank < k))
        top[s + rows, rank[rows, cols]] = True
    return first, top


def _discount(k: int) -> np.ndarray:
    """DCG position weights of ranks 0..k-1."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def relevance_scores(first: np.ndarray, top: np.ndarray, n_relevant: np.ndarray,
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, np.ndarray]:
    """Per-query values whose means are the metrics (so they bootstrap): recall@k = a relevant item in
    the top k, MRR = 1 / (rank of the first relevant + 1), NDCG@k (binary gains; k = top's width)."""
    first, top = np.asarray(first), np.asarray(top, dtype=float)
    k = top.shape[1]
    disc = _discount(k)
    ideal = np.cumsum(disc)[np.clip(np.asarray(n_relevant), 1, k) - 1]
    out = {f"recall@{j}": (first < j).astype(float) for j in ks}
    out["mrr"] = 1.0 / (first + 1)
    out[f"ndcg@{k}"] = (top * disc).sum(axis=1) / ideal
    return out


def relevance_chance(n_relevant: np.ndarray, gallery_size: int, ks: Sequence[int] = (1, 5, 10),
                     ndcg_k: int = 10) -> dict[str, np.ndarray]:
    """Per-query expected values of `relevance_scores` under a uniformly random ranking (exact).

    Query with n relevant among G: P(none in the top k) = C(G-n, k) / C(G, k); the first relevant
    rank F has P(F >= r) = C(G-r, n) / C(G, n); every rank is relevant with probability n / G.
    """
    n = np.asarray(n_relevant, dtype=np.int64)
    g = int(gallery_size)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        j = np.arange(min(k, g))
        out[f"recall@{k}"] = 1.0 - np.prod(np.clip((g - n[:, None] - j) / (g - j), 0.0, None), axis=1)
    mrr = {}
    r = np.arange(g)
    for m in np.unique(n):
        surv = np.concatenate([[1.0], np.cumprod(np.clip((g - r - m) / (g - r), 0.0, None))])  # P(F >= r)
        mrr[m] = float(((surv[:-1] - surv[1:]) / (r + 1)).sum())
    out["mrr"] = np.array([mrr[m] for m in n])
    disc = _discount(min(ndcg_k, g))
    ideal = np.cumsum(disc)[np.clip(n, 1, len(disc)) - 1]
    out[f"ndcg@{ndcg_k}"] = (n / g) * disc.sum() / ideal
    return out


def label_chance(query_labels: np.ndarray, gallery_labels: np.ndarray, in_gallery: bool = True) -> np.ndarray:
    """Per-query label P@k of random neighbours: the share of the gallery with the query's label
    (the query's own photo left out when it is in the gallery)."""
    names, counts = np.unique(np.asarray(gallery_labels), return_counts=True)
    freq = dict(zip(names.tolist(), counts.tolist()))
    own = int(in_gallery)
    c = np.array([freq.get(lab, 0) for lab in np.asarray(query_labels).tolist()], dtype=float)
    return (c - own) / (len(gallery_labels) - own)
