"""A resumable embedding cache: chunked, atomic files keyed by (encoder, item id, content hash)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashionlens.utils import atomic_write


class EmbeddingStore:
    """Vectors of one encoder+modality, stored as `chunk-*.npz` files written atomically.

    A crash or Ctrl-C loses at most the chunk in flight; reopening the store sees every finished chunk.
    """

    def __init__(self, root: str | Path, fingerprint: str, modality: str):
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", fingerprint.split("|")[0])[:60]
        digest = hashlib.blake2b(fingerprint.encode(), digest_size=6).hexdigest()
        self.dir = Path(root) / f"{slug}-{digest}" / modality
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir.parent / "FINGERPRINT").write_text(fingerprint)
        self._index: dict[str, tuple[Path, int]] = {}
        for f in sorted(self.dir.glob("chunk-*.npz")):
            self._read_keys(f)
        for f in sorted(self.dir.glob("ray-*.parquet")):  # shards written by fashionlens.embed.ray_engine
            import pyarrow.parquet as pq

            for row, key in enumerate(pq.read_table(f, columns=["key"]).column("key").to_pylist()):
                self._index[key] = (f, row)

    def _read_keys(self, f: Path) -> None:
        with np.load(f, allow_pickle=False) as z:
            for row, key in enumerate(z["keys"].tolist()):
                self._index[key] = (f, row)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def missing(self, keys: Sequence[str]) -> list[int]:
        """Positions of keys not yet stored."""
        return [i for i, k in enumerate(keys) if k not in self._index]

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Write one chunk atomically."""
        if len(keys) == 0:
            return
        n = len(list(self.dir.glob("chunk-*.npz")))
        f = self.dir / f"chunk-{n:06d}-{hashlib.blake2b(''.join(keys).encode(), digest_size=4).hexdigest()}.npz"
        with atomic_write(f) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=np.asarray(list(keys), dtype=str), vectors=np.asarray(vectors, dtype=np.float32))
        self._read_keys(f)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Vectors for `keys` (all must be stored), in order. One stored file is read at a time and
        dropped once its rows are copied, so a 40k catalog is held once (the result), not twice."""
        by_file: dict[Path, tuple[list[int], list[int]]] = {}
        for i, k in enumerate(keys):
            f, r = self._index[k]
            pos, rows = by_file.setdefault(f, ([], []))
            pos.append(i)
            rows.append(r)
        out: np.ndarray | None = None
        for f, (pos, rows) in by_file.items():
            if f.suffix == ".parquet":
                vectors = read_shard(f)[1]
            else:
                with np.load(f, allow_pickle=False) as z:
                    vectors = z["vectors"]
            if out is None:
                out = np.empty((len(keys), vectors.shape[1]), dtype=np.float32)
            out[pos] = vectors[rows]
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


# Parquet shards: what the Ray engine writes and this store reads beside its npz chunks.
def read_shard(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(keys, (n, dim) float32 vectors) of one shard."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    col = t.column("vector").combine_chunks()
    dim = col.type.list_size
    return t.column("key").to_pylist(), col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def write_shard(path: str | Path, keys: Sequence[str], vectors: np.ndarray) -> None:
    """One block's keys and vectors, written atomically (a reader never sees half a shard)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table({"key": pa.array(list(keys), type=pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
    with atomic_write(path) as tmp:
        pq.write_table(table, tmp)
