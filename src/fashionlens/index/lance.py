"""LanceDB backend: an on-disk table (row, id, vector) with an IVF-PQ index, behind the `ExactIndex` interface.

The table is the single source of truth: `add` appends rows and `remove` deletes them on disk at
once (no save needed to persist either), and `load` rebuilds ids/positions from it. Rows keep
their positions until `compact()` renumbers them, as in `ExactIndex`.

Filters: a `mask` is applied by over-fetching from Lance and post-filtering on row position (the
fetch grows by 1/selectivity and is retried wider until k allowed rows are found); when few rows
are allowed (`exact_below` of the table) they are scored exactly instead. Scores are exact cosines:
Lance re-ranks its PQ candidates with the full vectors (`refine_factor`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.index.base import write_backend
from fashionlens.index.exact import IdRows, prepare_query

TABLE = "items"
DB_DIR = "lance"


def _table(rows: np.ndarray, ids: np.ndarray, vectors: np.ndarray):
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.table({"row": pa.array(rows, type=pa.int64()), "id": pa.array([str(i) for i in ids], type=pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])})


class LanceIndex(IdRows):
    """Unit vectors with string ids in a LanceDB table; inner product = cosine.

    Params: `uri` (database folder; default a temp folder until `save`), `index_min_rows` (smaller
    tables are scanned exactly), `num_partitions` (default sqrt(n)), `num_sub_vectors` (dim/8),
    `nprobes`, `refine_factor` (candidates re-ranked exactly = k * refine_factor), `exact_below`.
    """

    backend = "lance"

    def __init__(self, vectors: np.ndarray, ids: list[str] | np.ndarray, *, uri: str | Path | None = None,
                 _open: bool = False, **params: Any):
        import lancedb

        self.params = {"index_min_rows": 2048, "nprobes": 20, "refine_factor": 10, "exact_below": 0.02} | params
        self._scratch = uri is None  # a temp folder of ours, removed once save() has copied it
        self.uri = Path(uri) if uri is not None else Path(tempfile.mkdtemp(prefix="fashionlens-lance-"))
        self._db = lancedb.connect(str(self.uri))
        self._vectors: np.ndarray | None = None
        if _open:
            self._tbl = self._db.open_table(TABLE)
            self._load_ids()
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"vectors {vectors.shape} and ids ({len(ids)}) do not match")
        self.ids = np.asarray(ids, dtype=str)
        if len(set(self.ids.tolist())) != len(self.ids):
            raise ValueError("duplicate ids in index")
        self.alive = np.ones(len(self.ids), dtype=bool)
        self._dim = vectors.shape[1]
        self._tbl = self._db.create_table(TABLE, _table(np.arange(len(self.ids)), self.ids, vectors), mode="overwrite")
        self._pos = {v: i for i, v in enumerate(self.ids)}
        self._maybe_index()

    def _load_ids(self) -> None:
        t = self._tbl.to_arrow().select(["row", "id"])
        rows = t.column("row").to_numpy()
        n = int(rows.max()) + 1 if len(rows) else 0
        self.ids = np.full(n, "", dtype=object)
        self.ids[rows] = t.column("id").to_pylist()
        self.ids = self.ids.astype(str)
        self.alive = np.zeros(n, dtype=bool)
        self.alive[rows] = True
        self._pos = {self.ids[r]: int(r) for r in rows}
        self._dim = self._tbl.schema.field("vector").type.list_size

    def _maybe_index(self) -> None:
        from lancedb.index import IvfPq

        n = self._tbl.count_rows()
        if n < int(self.params["index_min_rows"]):
            return
        parts = int(self.params.get("num_partitions") or max(1, int(np.sqrt(n))))
        subs = int(self.params.get("num_sub_vectors") or max(1, self.dim // 8))
        self._tbl.create_index("vector", config=IvfPq(distance_type="dot", num_partitions=parts,
                                                      num_sub_vectors=subs), replace=True)

    # ---- interface ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def vectors(self) -> np.ndarray:
        """All vectors by row position (removed rows are zeros); read from disk on first use."""
        if self._vectors is None:
            t = self._tbl.to_arrow().select(["row", "vector"])
            out = np.zeros((len(self.ids), self.dim), dtype=np.float32)
            col = t.column("vector").combine_chunks()
            out[t.column("row").to_numpy()] = col.flatten().to_numpy().reshape(-1, self.dim)
            self._vectors = out
        return self._vectors

    def add(self, vectors: np.ndarray, ids: list[str]) -> None:
        """Append items on disk (an id already present is replaced)."""
        ids = [str(i) for i in ids]
        self.remove([i for i in ids if i in self._pos])
        start = len(self.ids)
        self._tbl.add(_table(np.arange(start, start + len(ids)), np.asarray(ids), vectors))
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=str)])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])
        self._pos.update({v: start + k for k, v in enumerate(ids)})
        self._vectors = None

    def remove(self, ids: list[str]) -> int:
        """Delete items on disk; returns how many were present."""
        rows = [self._pos[str(i)] for i in ids if str(i) in self._pos and self.alive[self._pos[str(i)]]]
        if rows:
            self._tbl.delete(f"row IN ({', '.join(str(r) for r in rows)})")
            self.alive[rows] = False
            self._vectors = None
        return len(rows)

    def compact(self) -> np.ndarray:
        """Renumber rows 0..n-1 (dropping removed ones), rewrite the table and its index."""
        keep = np.flatnonzero(self.alive)
        vec = self.vectors[keep]
        self.ids = self.ids[keep]
        self.alive = np.ones(len(keep), dtype=bool)
        self._tbl = self._db.create_table(TABLE, _table(np.arange(len(keep)), self.ids, vec), mode="overwrite")
        self._pos = {v: i for i, v in enumerate(self.ids)}
        self._vectors = None
        self._maybe_index()
        return keep

    def search(self, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None,
               exclude: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, row positions) per query, best first; -1 pads when fewer items qualify."""
        q, allowed = prepare_query(self, queries, mask, exclude)
        n_allowed = int(allowed.sum())
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        if n_allowed == 0:
            return scores, idx
        if n_allowed <= max(float(self.params["exact_below"]) * len(self.alive), 4 * k):
            rows = np.flatnonzero(allowed)
            s = q @ self.vectors[rows].T
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            kk = top.shape[1]
            scores[:, :kk] = np.take_along_axis(s, top, axis=1)
            idx[:, :kk] = rows[top]
            return scores, idx
        n_live = len(self)
        for r in range(len(q)):
            limit = min(n_live, int(np.ceil(k * n_live / n_allowed)) + k)
            while True:
                rows, sc = self._query(q[r], limit)
                ok = allowed[rows]
                if ok.sum() >= k or limit >= n_live:
                    break
                limit = min(n_live, limit * 4)
            rows, sc = rows[ok][:k], sc[ok][:k]
            scores[r, : len(rows)], idx[r, : len(rows)] = sc, rows
        return scores, idx

    def _query(self, vec: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        res = (self._tbl.search(vec, vector_column_name="vector").distance_type("dot").limit(limit)
               .nprobes(int(self.params["nprobes"])).refine_factor(int(self.params["refine_factor"]))
               .select(["row"]).to_arrow())
        # Lance's "dot" distance is 1 - x.y; refine_factor made it exact
        return res.column("row").to_numpy(), (1.0 - res.column("_distance").to_numpy()).astype(np.float32)

    def save(self, folder: str | Path) -> None:
        """Make `folder` hold the table (copied there unless it already lives there) + backend.json."""
        folder = Path(folder)
        target = folder / DB_DIR
        if self.uri.resolve() != target.resolve():
            import lancedb

            tmp = folder / f".{DB_DIR}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.uri, tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            if self._scratch:
                shutil.rmtree(self.uri, ignore_errors=True)
            self.uri, self._db, self._scratch = target, lancedb.connect(str(target)), False
            self._tbl = self._db.open_table(TABLE)
        write_backend(folder, self.backend, self.params)

    @classmethod
    def load(cls, folder: str | Path, **params: Any) -> LanceIndex:
        from fashionlens.utils import read_json

        folder = Path(folder)
        saved = read_json(folder / "backend.json")["params"]
        return cls(np.zeros((0, 0)), [], uri=folder / DB_DIR, _open=True, **(saved | params))
