"""The one vector-index interface, and factories that pick a backend from an index folder.

A folder written by `make_index(...).save(folder)` holds a small `backend.json`
({"backend": name, "params": {...}}); a folder without one is an `ExactIndex` (the original format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fashionlens.errors import InvalidInputError
from fashionlens.utils import read_json, write_json

BACKEND_FILE = "backend.json"


@runtime_checkable
class VectorIndex(Protocol):
    """What search code may rely on, whatever the backend (exact, hnsw, ivfpq, lance)."""

    ids: np.ndarray  # string id per row position
    alive: np.ndarray  # bool per row position (False = removed, awaiting compact())

    @property
    def dim(self) -> int: ...

    @property
    def vectors(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def position(self, item_id: str) -> int: ...

    def search(self, queries: np.ndarray, k: int = 10, mask: np.ndarray | None = None,
               exclude: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def add(self, vectors: np.ndarray, ids: list[str]) -> None: ...

    def remove(self, ids: list[str]) -> int: ...

    def compact(self) -> np.ndarray: ...

    def save(self, folder: str | Path) -> None: ...


def _backends() -> dict[str, Any]:
    # imported lazily: faiss / lancedb load only when their backend is asked for
    from fashionlens.index.ann import HNSWIndex, IVFPQIndex
    from fashionlens.index.exact import ExactIndex
    from fashionlens.index.lance import LanceIndex

    return {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex, "lance": LanceIndex}


BACKENDS = ("exact", "hnsw", "ivfpq", "lance")


def _cls(backend: str):
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown index backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    return _backends()[backend]


def make_index(backend: str, vectors: np.ndarray, ids: list[str] | np.ndarray, **params: Any) -> VectorIndex:
    """Build an index of `backend` ("exact", "hnsw", "ivfpq" or "lance") over unit vectors."""
    return _cls(backend)(vectors, ids, **params)


def write_backend(folder: str | Path, backend: str, params: dict[str, Any]) -> None:
    """Record which backend (and build parameters) a folder holds; called by each backend's save()."""
    write_json(Path(folder) / BACKEND_FILE, {"backend": backend, "params": params})


def backend_of(folder: str | Path) -> str:
    f = Path(folder) / BACKEND_FILE
    return read_json(f)["backend"] if f.is_file() else "exact"


def open_index(folder: str | Path, **kw: Any) -> VectorIndex:
    """Load whatever index a folder holds (no backend.json = exact, the original layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no index folder at {folder}")
    return _cls(backend_of(folder)).load(folder, **kw)
