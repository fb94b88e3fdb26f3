"""Small shared helpers: atomic writes, JSON, content hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def default_cache() -> Path:
    """The embedding cache folder: `FASHIONLENS_CACHE`, else ~/.cache/fashionlens/embeddings."""
    return Path(os.environ.get("FASHIONLENS_CACHE", Path.home() / ".cache" / "fashionlens" / "embeddings"))


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Lay out a matplotlib figure, write it atomically as PNG, close it; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def require_file(folder: str | Path, name: str, what: str, hint: str = "") -> Path:
    """`folder/name`, or a FileNotFoundError saying the folder is not `what` (plus how to make one)."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not {what}: {name} is missing{hint}")
    return path


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """Short content hash of a file (blake2b-64), the cache key of an image's pixels."""
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()
