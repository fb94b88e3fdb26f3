"""Retrieval metrics as pure functions on arrays, computed over the whole gallery."""

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


def topk(queries: np.ndarray, gallery: np.ndarray, k: int, exclude_self: bool = False, block: int = 1024) -> np.ndarray:
    """Indices (q, k) of the k best gallery items per query, best first (self excluded if asked)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), block):
        sc = queries[s : s + block] @ gallery.T
        if exclude_self:
            sc[np.arange(len(sc)), np.arange(s, s + len(sc))] = -np.inf
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
