"""Near-duplicate photos: pairs whose embeddings have cosine >= a threshold, found without an n x n matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fashionlens.errors import InvalidInputError


def near_duplicate_pairs(X: np.ndarray, threshold: float = 0.97, block: int = 4096,
                         ids: Sequence[str] | None = None) -> pd.DataFrame:
    """All pairs i < j with cosine(X[i], X[j]) >= `threshold`, most similar first.

    Exact: faiss range search over an inner-product index of the unit rows, queried `block` rows at
    a time, so memory stays O(n * block) in the worst case rather than n^2 (40k items fit easily).
    Zero rows (photos that failed to decode) are never matched. Columns: i, j, id_i, id_j, cosine.
    """
    import faiss

    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"threshold must be in (0, 1], got {threshold}")
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1)
    valid = np.flatnonzero(norms > 1e-6)
    Xv = np.ascontiguousarray(X[valid] / norms[valid, None])
    index = faiss.IndexFlatIP(Xv.shape[1])
    index.add(Xv)
    # float32 rounding can put an exact copy a hair under 1.0: search a tiny bit lower, filter after
    radius = float(threshold) - 1e-5
    ii, jj, ss = [], [], []
    for start in range(0, len(Xv), block):
        lims, D, J = index.range_search(Xv[start : start + block], radius)
        rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = rows < J  # each pair once, no self-matches
        ii.append(rows[keep])
        jj.append(J[keep])
        ss.append(D[keep])
    i = valid[np.concatenate(ii)] if ii else np.zeros(0, dtype=np.int64)
    j = valid[np.concatenate(jj)] if jj else np.zeros(0, dtype=np.int64)
    s = np.minimum(np.concatenate(ss), 1.0) if ss else np.zeros(0, dtype=np.float32)
    out = pd.DataFrame({"i": i.astype(np.int64), "j": j.astype(np.int64), "cosine": s.astype(float)})
    out = out[out["cosine"] >= threshold - 1e-6].sort_values(["cosine", "i", "j"], ascending=[False, True, True])
    names = np.asarray(ids if ids is not None else np.arange(len(X)).astype(str), dtype=object)
    out.insert(2, "id_i", names[out["i"].to_numpy()])
    out.insert(3, "id_j", names[out["j"].to_numpy()])
    return out.reset_index(drop=True)


def duplicate_groups(pairs: pd.DataFrame, n: int) -> list[list[int]]:
    """Connected groups of items linked by near-duplicate pairs (largest first), for listing."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if pairs.empty:
        return []
    g = coo_matrix((np.ones(len(pairs)), (pairs["i"].to_numpy(), pairs["j"].to_numpy())), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    members = np.unique(np.concatenate([pairs["i"].to_numpy(), pairs["j"].to_numpy()]))
    groups: dict[int, list[int]] = {}
    for m in members:
        groups.setdefault(int(comp[m]), []).append(int(m))
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))
