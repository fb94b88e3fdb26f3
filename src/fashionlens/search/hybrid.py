"""Fusion of the photo side (vector cosine) and the word side (BM25), plus soft facet boosts.

score = w_v / (K + rank_vector) + w_k / (K + rank_keyword) + w_f * (share of the query's facets the
item carries) + w_n * (the query is the item's whole name). Reciprocal-rank fusion (K = 60, Cormack
et al. 2009) needs no score calibration between cosine and BM25; the facet term lifts items whose
labels say what the query says without dropping the rest; the name term puts the product a shopper
names first (names repeat in catalogs: all items of that name get it). The weights were chosen on a tuning gallery apart from the test queries
(benchmarks/search_hybrid.py, docs/search.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fashionlens.search.query import FacetMatch, Facets

MODES = ("hybrid", "vector", "keyword")
TYPE_COLUMNS = ("articleType", "product_type_name")
COLOUR_COLUMNS = ("baseColour", "colour_group_name")


@dataclass
class FusionConfig:
    """Hybrid ranking weights (defaults: docs/search.md)."""

    rrf_k: float = 60.0
    vector_weight: float = 1.0
    keyword_weight: float = 1.0
    facet_weight: float = 0.02
    name_weight: float = 0.05  # above any fused score without it: an exact name wins
    candidates: int = 200  # from each side, before fusion


def fuse(vec_pos: np.ndarray, kw_pos: np.ndarray, facet_hits: np.ndarray | None, k: int,
         cfg: FusionConfig, named: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Top-k of the union of both candidate lists (row positions, best first).

    `facet_hits[i, j]`: candidate i (in `candidates(vec_pos, kw_pos)` order) carries query facet j;
    `named[i]`: the query is candidate i's whole name.
    Returns (positions, fused scores, per-candidate ranks {"vector", "keyword"}: 0-based, -1 = absent).
    """
    cand = candidates(vec_pos, kw_pos)
    rv, rk = _ranks(cand, vec_pos), _ranks(cand, kw_pos)
    score = np.zeros(len(cand))
    score += np.where(rv >= 0, cfg.vector_weight / (cfg.rrf_k + rv + 1), 0.0)
    score += np.where(rk >= 0, cfg.keyword_weight / (cfg.rrf_k + rk + 1), 0.0)
    if facet_hits is not None and facet_hits.shape[1]:
        score += cfg.facet_weight * facet_hits.mean(axis=1)
    if named is not None:
        score += cfg.name_weight * named
    order = np.argsort(-score, kind="stable")[:k]
    return cand[order], score[order], {"vector": rv[order], "keyword": rk[order], "order": order}


def candidates(vec_pos: np.ndarray, kw_pos: np.ndarray) -> np.ndarray:
    """Both sides' row positions, vector side first, each once."""
    both = np.concatenate([vec_pos[vec_pos >= 0], kw_pos[kw_pos >= 0]]).astype(np.int64)
    _, first = np.unique(both, return_index=True)
    return both[np.sort(first)]


def _ranks(cand: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Each candidate's 0-based rank in `ranked` (-1 pads it), -1 where absent; by sorted look-up,
    not a dict of Python ints (0.6 ms of the request's Python time for 2 x 200 candidates)."""
    at = np.flatnonzero(ranked >= 0)
    if not len(at) or not len(cand):
        return np.full(len(cand), -1, dtype=np.int64)
    order = np.argsort(ranked[at], kind="stable")
    sorted_pos = ranked[at][order]
    i = np.minimum(np.searchsorted(sorted_pos, cand), len(sorted_pos) - 1)
    return np.where(sorted_pos[i] == cand, at[order[i]], -1).astype(np.int64)


def explain(mode: str, facets: list[FacetMatch], hit_facets: np.ndarray | None, terms: list[str],
            vector: float | None, vector_rank: int | None, keyword_rank: int | None,
            named: bool = False) -> dict[str, Any]:
    """What made a hit: the query words found in its text, the facet values it carries, its photo score."""
    why: dict[str, Any] = {"mode": mode, "terms": terms}
    if named:
        why["name"] = True  # the query is this item's name
    if facets:
        why["facets"] = {col: val for m, ok in zip(facets, hit_facets if hit_facets is not None else [])
                         if ok for col, val in m.values[:1]}
    if vector is not None:
        why["vector"] = round(float(vector), 4)
    why["vector_rank"] = vector_rank
    why["keyword_rank"] = keyword_rank
    return why


def matched_terms(query_words: list[tuple[str, str]], doc_words: set[str]) -> list[str]:
    """The query's words (as typed) whose stems occur in the hit's analyzed text."""
    seen, out = set(), []
    for typed, stem in query_words:
        if stem in doc_words and typed not in seen:
            seen.add(typed)
            out.append(typed)
    return out


def why_line(why: dict[str, Any]) -> str:
    """One line under a result's photo: the words that matched, the facet values it carries, its photo score."""
    parts = ["name ✓"] if why.get("name") else []
    if why.get("terms"):
        parts.append("words: " + ", ".join(why["terms"]))
    if why.get("facets"):
        parts.append(" · ".join(f"{v} ✓" for v in why["facets"].values()))
    if why.get("vector") is not None:
        parts.append(f"photo {why['vector']:.2f}")
    return " · ".join(parts) or "photo match"


def label_match(item: dict[str, Any], other: dict[str, Any]) -> dict[str, bool]:
    """For "similar items": does `other` share `item`'s type and colour (where the catalog has them)."""
    out = {}
    for key, cols in (("type", TYPE_COLUMNS), ("colour", COLOUR_COLUMNS)):
        col = next((c for c in cols if c in item), None)
        if col is not None:
            out[key] = str(item[col]).lower() == str(other.get(col)).lower()
    return out


__all__ = ["COLOUR_COLUMNS", "MODES", "TYPE_COLUMNS", "Facets", "FusionConfig", "explain", "fuse", "label_match",
           "matched_terms", "why_line"]
