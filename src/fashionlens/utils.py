"""Small shared helpers: atomic writes of files and whole folders, JSON, content hashing."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fashionlens.errors import InvalidInputError


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


# ---- whole folders: build aside, swap in, check on load --------------------------------------
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "fashionlens.manifest/1"
# files up to this size are hashed when a folder is opened; larger ones (vectors of big catalogs,
# often memory-mapped) are checked by size only, so opening stays cheap
HASH_LIMIT = 16 << 20


class FolderError(InvalidInputError):
    """A folder fashionlens refuses to read or to replace; the message names the file and the problem."""


@contextlib.contextmanager
def atomic_dir(path: str | Path, marks: tuple[str, ...] = (), carry: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield an empty temporary sibling of `path` to write a whole folder into. When the block
    succeeds, a manifest (every file's size and hash) is written last and the folder replaces `path`
    by renames: `path` -> `.name.old-*`, temp -> `path`, old removed. A crash at any point leaves
    either the old or the new folder at `path`, or neither with a complete one beside it, which
    `check_dir` moves back into place. `carry`: entries of the current folder copied in first (kept
    unless the block rewrites them). `marks`: names that identify a folder fashionlens may replace;
    an existing non-empty folder with none of them (or a manifest) is refused, never deleted.
    One writer per folder at a time."""
    path = Path(path).resolve()
    check_replaceable(path, marks)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    try:
        for name in carry:
            src = path / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif src.is_file():
                shutil.copy2(src, tmp / name)
        yield tmp
        write_json(tmp / MANIFEST, {"format": MANIFEST_FORMAT, "written": time.time(), "files": _listing(tmp)})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, path)


def check_dir(path: str | Path) -> Path:
    """`path`, after finishing an interrupted swap and checking the folder against its manifest.

    A folder without a manifest (written before manifests existed) passes unchecked; a missing
    folder is left to the caller. A listed file that is missing, of another size or (up to
    HASH_LIMIT) another hash raises FolderError naming it."""
    path = Path(path)
    if not path.exists():
        _recover(path.resolve())
    if path.is_dir():
        _verify(path)
    return path


def check_replaceable(path: str | Path, marks: tuple[str, ...]) -> None:
    """FolderError unless `atomic_dir(path, marks)` may replace `path`: absent, empty, or one of ours."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FolderError(f"{path} exists and is not a folder")
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir())
        if entries and not any((path / m).exists() for m in (MANIFEST, *marks)):
            raise FolderError(f"{path} holds other files ({', '.join(entries[:5])}): fashionlens replaces "
                              "its output folder as a whole, so choose a new or empty folder")


def _listing(root: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(root).as_posix(): {"size": p.stat().st_size, "blake2b": file_hash(p)}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def _leftovers(path: Path) -> list[Path]:
    """Temp and old copies of `path` that a crashed or finished swap left beside it."""
    pattern = glob.escape(f".{path.name}")
    return [p for kind in ("tmp", "old") for p in path.parent.glob(f"{pattern}.{kind}-*") if p.is_dir()]


def _swap(tmp: Path, path: Path) -> None:
    if path.exists():
        # the same random suffix as the temp folder: unique, and it says which build replaced it
        old = path.with_name(f".{path.name}.old-" + tmp.name[len(f".{path.name}.tmp-"):])
        os.replace(path, old)  # a crash from here until the next rename: check_dir recovers
    try:
        os.replace(tmp, path)
    except FileNotFoundError:  # a reader's check_dir moved the finished folder into place first
        if not path.is_dir():
            raise
    for p in _leftovers(path):  # our old folder, and whatever earlier crashes left
        shutil.rmtree(p, ignore_errors=True)


def _recover(path: Path) -> None:
    """`path` is missing: move the newest complete leftover (a finished temp or the old folder) there."""
    done = []
    for p in _leftovers(path):
        try:
            manifest = _verify(p)
        except (FolderError, OSError):  # half-written or half-deleted: not a candidate
            continue
        if manifest is not None:
            done.append((manifest["written"], p))
    if done:
        try:
            os.replace(max(done)[1], path)
        except FileNotFoundError:  # the writer (or another reader) finished the swap meanwhile
            if not path.is_dir():
                raise


def _verify(folder: Path) -> dict[str, Any] | None:
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return None
    try:
        manifest = read_json(mpath)
        files = {str(k): (int(v["size"]), str(v["blake2b"])) for k, v in manifest["files"].items()}
        manifest["written"] = float(manifest["written"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FolderError(f"{mpath}: unreadable manifest ({e!r})") from e
    for name, (want_size, want_hash) in files.items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise FolderError(f"{mpath}: lists a file outside the folder ({name!r})")
        f = folder / rel
        if not f.is_file():
            raise FolderError(f"{f}: missing (the manifest lists it); the folder is incomplete")
        size = f.stat().st_size
        if size != want_size:
            raise FolderError(f"{f}: {size} bytes, the manifest says {want_size} (truncated or from another build)")
        if size <= HASH_LIMIT and file_hash(f) != want_hash:
            raise FolderError(f"{f}: content differs from the manifest (changed or from another build)")
    return manifest
