"""Exact cosine top-k over unit vectors (faiss brute-force kernels), with pre-filters, add and remove."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fashionlens.errors import InvalidInputError, NotFoundError
from fashionlens.utils import FolderError

# faiss switches from its SIMD loop to BLAS at this many queries. Its default (20) made 100-query
# batches several times slower than BLAS on 2 cores; measured in benchmarks/index_search.py.
BLAS_THRESHOLD = 4


# A single query is a matrix-vector product: plain BLAS sgemv + argpartition beat faiss's knn by
# ~1.6x at 1M vectors (p95 66 vs 106 ms); batches go to faiss, which is ~5x faster there.
SMALL_BATCH = 2


def _numpy_knn(q: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sc = q @ base.T
    part = np.argpartition(-sc, k - 1, axis=1)[:, :k] if k < sc.shape[1] else np.tile(np.arange(sc.shape[1]), (len(q), 1))
    top = np.take_along_axis(sc, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)


def _faiss():
    import faiss

    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    return faiss


class IdRows:
    """Row bookkeeping shared by the backends: `alive` (tombstones) and `_pos` (id → row)."""

    alive: np.ndarray
    _pos: dict[str, int]

    def __len__(self) -> int:
        return int(self.alive.sum())

    def position(self, item_id: str) -> int:
        pos = self._pos.get(str(item_id))
        if pos is None or not self.alive[pos]:
            raise NotFoundError(f"no item with id '{item_id}' in the index")
        return pos


class ExactIndex(IdRows):
    """Rows of `vectors` (float32, unit norm) with string ids; inner product = cosine.

    Removal is a tombstone (no rebuild); `compact()` drops tombstoned rows.
    """

    def __init__(self, vectors: np.ndarray, ids: list[str] | np.ndarray):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"vectors {vectors.shape} and ids ({len(ids)}) do not match")
        self.vectors = vectors
        self.ids = np.asarray(ids, dtype=str)
        self.alive = np.ones(len(ids), dtype=bool)
        self._pos = {v: i for i, v in enumerate(self.ids)}
        if len(self._pos) != len(self.ids):
            raise ValueError("duplicate ids in index")

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def add(self, vectors: np.ndarray, ids: list[str]) -> None:
        """Append items (an id already present is replaced)."""
        ids = [str(i) for i in ids]
        for i in ids:
            if i in self._pos:
                self.alive[self._pos[i]] = False
        start = len(self.ids)
        self.vectors = np.concatenate([self.vectors, np.asarray(vectors, dtype=np.float32)])
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=str)])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])
        self._pos.update({v: start + k for k, v in enumerate(ids)})

    def remove(self, ids: list[str]) -> int:
        """Tombstone items; returns how many were removed."""
        n = 0
        for i in ids:
            p = self._pos.get(str(i))
            if p is not None and self.alive[p]:
                self.alive[p] = False
                n += 1
        return n

    def compact(self) -> np.ndarray:
        """Drop tombstones; returns the kept row positions (to subset metadata alongside)."""
        keep = np.flatnonzero(self.alive)
        self.vectors, self.ids = self.vectors[keep], self.ids[keep]
        self.alive = np.ones(len(keep), dtype=bool)
        self._pos = {v: i for i, v in enumerate(self.ids)}
        return keep

    def search(self, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None,
               exclude: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row positions) per query, best first; -1 pads when fewer items qualify.

        `mask` (bool per row) pre-filters by metadata; `exclude` drops ids (e.g. the query item).
        """
        q, allowed = prepare_query(self, queries, mask, exclude)
        rows = None if allowed.all() else np.flatnonzero(allowed)
        base = self.vectors if rows is None else self.vectors[rows]
        kk = min(k, len(base))
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        if kk == 0:
            return scores, idx
        if len(q) <= SMALL_BATCH:
            d, i = _numpy_knn(q, base, kk)
        else:
            faiss = _faiss()
            d, i = faiss.knn(q, base, kk, metric=faiss.METRIC_INNER_PRODUCT)
        scores[:, :kk] = d
        idx[:, :kk] = i if rows is None else rows[i]
        return scores, idx

    def save(self, folder: str | Path) -> None:
        from fashionlens.utils import atomic_write

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in (("vectors.npy", self.vectors), ("ids.npy", self.ids), ("alive.npy", self.alive)):
            with atomic_write(folder / name) as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        from fashionlens.index.base import write_backend

        write_backend(folder, "exact", {})  # a folder rebuilt as exact must not reopen as an old ANN

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False) -> ExactIndex:
        vectors, ids, alive = load_rows(folder, mmap)
        index = cls(vectors, ids)
        index.alive = alive
        return index


def load_rows(folder: str | Path, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """vectors.npy, ids.npy and alive.npy of a saved index, or a FolderError naming the file that is
    unreadable or whose row count disagrees (files of different builds)."""
    folder = Path(folder)
    arrays = {}
    for name in ("vectors.npy", "ids.npy", "alive.npy"):
        try:
            arrays[name] = np.load(folder / name, mmap_mode="r" if mmap and name == "vectors.npy" else None,
                                   allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise FolderError(f"{folder / name}: unreadable ({e})") from e
    n = len(arrays["ids.npy"])
    for name in ("vectors.npy", "alive.npy"):
        if len(arrays[name]) != n:
            raise FolderError(f"{folder / name}: {len(arrays[name])} rows but ids.npy has {n}: "
                              "the index files come from different builds")
    return arrays["vectors.npy"], arrays["ids.npy"], arrays["alive.npy"]


def prepare_query(index, queries: np.ndarray, mask: np.ndarray | None,
                  exclude: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 queries and the rows they may hit: alive, pre-filtered, minus excluded ids.

    Shared by every backend (`index` needs `.dim`, `.alive` and the id → row map `._pos`).
    """
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] != index.dim:
        raise InvalidInputError(f"query dim {q.shape[1]} != index dim {index.dim} (built with another encoder?)")
    allowed = index.alive if mask is None else index.alive & mask
    if exclude:
        allowed = allowed.copy()
        for i in exclude:
            p = index._pos.get(str(i))
            if p is not None:
                allowed[p] = False
    return q, allowed
