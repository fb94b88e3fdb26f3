"""Hard negatives mined from the catalog: batches of look-alike items (pure numpy).

In a random 512 batch of a 40k catalog the negatives are mostly other article types, so the loss
never has to tell one black T-shirt from the next — which is what a whole-catalog search must do.
Batches built from nearest neighbours of the same label make those the in-batch negatives.
"""

from __future__ import annotations

import numpy as np


def mine_neighbours(features: np.ndarray, labels: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """(n, k) row indices of each item's k most cosine-similar items with the same label, best first.

    The item itself is never its own neighbour; a label with fewer than k + 1 items pads with -1.
    """
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels).astype(str)
    if len(labels) != len(x):
        raise ValueError(f"features have {len(x)} rows but labels {len(labels)}")
    out = np.full((len(x), k), -1, dtype=np.int64)
    for lab in np.unique(labels):
        rows = np.flatnonzero(labels == lab)
        kk = min(k, len(rows) - 1)
        if kk < 1:
            continue
        g = x[rows]
        for s in range(0, len(rows), block):
            sc = g[s : s + block] @ g.T
            sc[np.arange(len(sc)), np.arange(s, s + len(sc))] = -np.inf
            part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
            part = np.take_along_axis(part, np.argsort(-np.take_along_axis(sc, part, 1), 1), 1)
            out[rows[s : s + block], :kk] = rows[part]
    return out


def neighbour_batches(neighbours: np.ndarray, items: np.ndarray, batch_size: int, group: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches over `items`, each item exactly once: walking the items in random order,
    an unused item opens a group with up to `group - 1` of its still unused neighbours."""
    if group < 1 or batch_size < 2:
        raise ValueError(f"need group >= 1 and batch_size >= 2, got {group} and {batch_size}")
    free = np.zeros(len(neighbours), dtype=bool)
    free[items] = True
    flat: list[int] = []
    for seed in rng.permutation(items):
        if not free[seed]:
            continue
        grp = [int(seed)] + [int(j) for j in neighbours[seed] if j >= 0 and free[j]][: group - 1]
        free[grp] = False
        flat += grp
    batches = [np.asarray(flat[i : i + batch_size]) for i in range(0, len(flat), batch_size)]
    return [b for b in batches if len(b) >= 2]  # a 1-item batch has no negatives
