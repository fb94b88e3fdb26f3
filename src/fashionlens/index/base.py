"""The one vector-index interface every backend implements (factories: `index.factory`).

A folder written by `make_index(...).save(folder)` holds a small `backend.json`
({"backend": name, "params": {...}}); a folder without one is an `ExactIndex` (the original format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fashionlens.utils import write_json

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


def write_backend(folder: str | Path, backend: str, params: dict[str, Any]) -> None:
    """Record which backend (and build parameters) a folder holds; called by each backend's save()."""
    write_json(Path(folder) / BACKEND_FILE, {"backend": backend, "params": params})
