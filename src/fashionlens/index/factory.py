"""Build or open an index of any backend; a folder's `backend.json` says which (none = exact).

Backends import only `index.base`; this module imports them lazily, so faiss / lancedb load only when
their backend is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.errors import InvalidInputError
from fashionlens.index.base import BACKEND_FILE, VectorIndex
from fashionlens.utils import read_json

BACKENDS = ("exact", "hnsw", "ivfpq", "lance")


def _backends() -> dict[str, Any]:
    # imported lazily: faiss / lancedb load only when their backend is asked for
    from fashionlens.index.ann import HNSWIndex, IVFPQIndex
    from fashionlens.index.exact import ExactIndex
    from fashionlens.index.lance import LanceIndex

    return {"exact": ExactIndex, "hnsw": HNSWIndex, "ivfpq": IVFPQIndex, "lance": LanceIndex}


def _cls(backend: str):
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown index backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    return _backends()[backend]


def make_index(backend: str, vectors: np.ndarray, ids: list[str] | np.ndarray, **params: Any) -> VectorIndex:
    """Build an index of `backend` ("exact", "hnsw", "ivfpq" or "lance") over unit vectors."""
    return _cls(backend)(vectors, ids, **params)


def backend_of(folder: str | Path) -> str:
    f = Path(folder) / BACKEND_FILE
    return read_json(f)["backend"] if f.is_file() else "exact"


def open_index(folder: str | Path, **kw: Any) -> VectorIndex:
    """Load whatever index a folder holds (no backend.json = exact, the original layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no index folder at {folder}")
    return _cls(backend_of(folder)).load(folder, **kw)
