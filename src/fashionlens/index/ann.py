"""Approximate indexes (faiss HNSW and IVF-PQ) behind the `ExactIndex` interface.

Both generate candidates from a compressed faiss structure and re-rank them with the exact vectors,
so the scores they return are true cosines (comparable with `ExactIndex`) and only the candidate
set is approximate. The exact vectors can stay on disk (`load(..., mmap=True)`): only the
candidates' rows are read per query.

Filters (`mask`, `exclude`, removed rows) are real pre-filters: a faiss `IDSelectorBitmap` is passed
to the search, so the top-k is drawn from the allowed rows only. When few rows are allowed
(fewer than `exact_below` of the index) the graph/lists would be mostly filtered out, so the search
falls back to exact brute force over the allowed rows, which is then both faster and exact.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fashionlens.errors import InvalidInputError
from fashionlens.index.base import write_backend
from fashionlens.index.exact import ExactIndex, _faiss, load_rows, prepare_query
from fashionlens.utils import FolderError, atomic_write

FAISS_FILE = "ann.faiss"
MAX_WIDEN = 16.0


class _RerankedANN(ExactIndex):
    """Id bookkeeping, tombstones and save/load come from `ExactIndex`; subclasses build faiss."""

    backend: ClassVar[str]
    default_rerank: ClassVar[int]

    def __init__(self, vectors: np.ndarray, ids: list[str] | np.ndarray, *, rerank: int | None = None,
                 exact_below: float = 0.02, _ann: Any = None, **params: Any):
        super().__init__(vectors, ids)
        self.rerank = int(rerank or self.default_rerank)  # candidates fetched = k * rerank
        self.exact_below = float(exact_below)
        self.params = self._defaults(len(self.ids), self.dim) | params
        self._ann = _ann if _ann is not None else self._build(self.vectors)

    # subclasses -------------------------------------------------------------------------------
    def _defaults(self, n: int, dim: int) -> dict[str, Any]:
        raise NotImplementedError

    def _build(self, vectors: np.ndarray) -> Any:
        raise NotImplementedError

    def _search_params(self, sel: Any, n_cand: int, widen: float) -> Any:
        raise NotImplementedError

    # interface --------------------------------------------------------------------------------
    def add(self, vectors: np.ndarray, ids: list[str]) -> None:
        """Append items (an id already present is replaced: old row tombstoned)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        super().add(vectors, ids)
        self._ann.add(vectors)

    def compact(self) -> np.ndarray:
        """Drop removed rows and rebuild the faiss structure over the rest."""
        keep = super().compact()
        self._ann = self._build(self.vectors)
        return keep

    def search(self, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None,
               exclude: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (exact scores, row positions) per query among allowed rows; -1 pads."""
        q, allowed = prepare_query(self, queries, mask, exclude)
        n_allowed = int(allowed.sum())
        if n_allowed <= max(self.exact_below * len(self.ids), k * self.rerank):
            return super().search(q, k, mask=allowed)
        sel = None
        if n_allowed < len(allowed):
            bits = np.packbits(allowed, bitorder="little")  # faiss reads bit i&7 of byte i>>3
            sel = _faiss().IDSelectorBitmap(len(allowed), _faiss().swig_ptr(bits))
        n_cand = k * self.rerank
        # a filter that keeps a fraction f of rows leaves ~f of each visited list/neighbourhood:
        # widen the search by 1/f (capped) so about as many allowed candidates are seen
        widen = min(len(allowed) / n_allowed, MAX_WIDEN)
        _, cand = self._ann.search(q, n_cand, params=self._search_params(sel, n_cand, widen))
        return self._rerank(q, cand, k)

    def _rerank(self, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        for r in range(len(q)):
            c = cand[r][cand[r] >= 0]
            if len(c) == 0:
                continue
            c = np.unique(c)  # sorted rows: sequential reads when vectors are memory-mapped
            s = self.vectors[c] @ q[r]
            top = np.argsort(-s, kind="stable")[:k]
            scores[r, : len(top)], idx[r, : len(top)] = s[top], c[top]
        return scores, idx

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        super().save(folder)
        with atomic_write(folder / FAISS_FILE) as tmp:
            _faiss().write_index(self._ann, str(tmp))
        write_backend(folder, self.backend, {"rerank": self.rerank, "exact_below": self.exact_below,
                                             **self.params})

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True) -> _RerankedANN:
        """Open a saved index; `mmap` keeps the exact vectors on disk (only candidates are read)."""
        from fashionlens.utils import read_json

        folder = Path(folder)
        params = read_json(folder / "backend.json")["params"]
        ann = _faiss().read_index(str(folder / FAISS_FILE))
        vectors, ids, alive = load_rows(folder, mmap)
        if ann.ntotal != len(ids):
            raise FolderError(f"{folder / FAISS_FILE}: {ann.ntotal} vectors but ids.npy has {len(ids)}: "
                              "the index files come from different builds")
        index = cls(vectors, ids, _ann=ann, **params)
        index.alive = alive
        return index


class HNSWIndex(_RerankedANN):
    """HNSW graph over 8-bit scalar-quantised vectors (1 byte/dim), exact re-rank.

    Params: `M` (graph degree), `ef_construction`, `ef_search` (candidate list; raised to
    k*rerank when smaller). Memory: ~dim + 2*M*4*1.1 bytes per vector plus the exact vectors.
    """

    backend = "hnsw"
    default_rerank = 4

    def _defaults(self, n: int, dim: int) -> dict[str, Any]:
        # measured at 1M (docs/bench/scale.md): recall@10 0.989 at ef_search=256, 1.5-3 ms per query
        return {"M": 32, "ef_construction": 64, "ef_search": 256}

    def _build(self, vectors: np.ndarray) -> Any:
        faiss = _faiss()
        p = self.params
        ann = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
        ann.hnsw.efConstruction = int(p["ef_construction"])
        # unit vectors: every coordinate lies in [-1, 1]; training the quantiser on that range
        # (instead of on the data) keeps it valid for whatever is added later
        ann.train(np.array([[-1.0] * self.dim, [1.0] * self.dim], dtype=np.float32))
        if len(vectors):
            ann.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return ann

    def _search_params(self, sel: Any, n_cand: int, widen: float) -> Any:
        ef = max(int(self.params["ef_search"]), n_cand)
        return _faiss().SearchParametersHNSW(sel=sel, efSearch=int(ef * widen))


class IVFPQIndex(_RerankedANN):
    """Inverted lists (`nlist` k-means cells, `nprobe` visited) of product-quantised codes, exact re-rank.

    Params: `nlist` (default ~sqrt(n)), `m` PQ sub-vectors (default dim/8, i.e. m bytes/vector),
    `nbits` (8), `nprobe`, `train_size` (vectors sampled to train). Needs >= 1,000 vectors to train.
    """

    backend = "ivfpq"
    default_rerank = 10

    def _defaults(self, n: int, dim: int) -> dict[str, Any]:
        nlist = max(1, min(int(math.sqrt(max(n, 1))), n // 39))  # 1,024 at 1M, as measured
        return {"nlist": nlist, "m": max(1, dim // 8), "nbits": 8 if n >= 256 * 39 else 6,
                "nprobe": max(1, min(nlist, 32)), "train_size": 65_536, "seed": 0}

    def _build(self, vectors: np.ndarray) -> Any:
        faiss = _faiss()
        p = self.params
        if len(vectors) < 1000:
            raise InvalidInputError(f"ivfpq needs at least 1,000 vectors to train (got {len(vectors)}); "
                             "use the exact or hnsw backend for small catalogs")
        if self.dim % int(p["m"]):
            raise InvalidInputError(f"ivfpq: m={p['m']} must divide the vector dim {self.dim}")
        quantizer = faiss.IndexFlatIP(self.dim)
        ann = faiss.IndexIVFPQ(quantizer, self.dim, int(p["nlist"]), int(p["m"]), int(p["nbits"]),
                               faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(int(p["seed"]))
        n_train = min(len(vectors), int(p["train_size"]))
        rows = np.sort(rng.choice(len(vectors), n_train, replace=False))
        ann.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        for s in range(0, len(vectors), 200_000):  # bounded temporaries when vectors are mmapped
            ann.add(np.ascontiguousarray(vectors[s : s + 200_000], dtype=np.float32))
        return ann

    def _search_params(self, sel: Any, n_cand: int, widen: float) -> Any:
        nprobe = min(int(self.params["nlist"]), math.ceil(int(self.params["nprobe"]) * widen))
        return _faiss().SearchParametersIVF(sel=sel, nprobe=nprobe)
