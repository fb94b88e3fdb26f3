"""The one run manifest every saved artefact carries: `{"kind", "format_version", "config", ...}`.

`write_manifest` writes it and `read_manifest` reads it, for every kind of folder fashionlens saves
(index, categorizer, encoder runs, engine checkpoints, re-rankers, sales runs). Each kind keeps its manifest in
its own file name (index.json, categorizer.json, encoder.json, ...) so folders saved before this
module existed keep their layout; those (format_version 1, the layouts of earlier code) are read
as the current shape. A folder of another kind, or one written by a newer fashionlens, is refused
with a FolderError naming the folder and what it is.

This is not the integrity manifest (`utils.MANIFEST`, manifest.json): that one lists every file's
size and hash so a half-written folder is caught; this one says what the folder is and how it was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashionlens.utils import FolderError, check_dir, check_replaceable, write_json


@dataclass(frozen=True)
class Kind:
    """One kind of saved folder."""

    file: str  # the manifest's file name inside the folder
    what: str  # how messages name such a folder
    hint: str = ""  # how to make one (ends a "not found" message)
    version: int = 2  # the format_version this code writes and the newest it reads
    flat: tuple[str, ...] = ()  # config keys format_version 1 kept at the top level
    by_name: bool = True  # a format_version 1 file without a "kind" field is this kind by its file name


KINDS: dict[str, Kind] = {
    "index": Kind("index.json", "a fashionlens index", "build one with `fashionlens index`"),
    "categorizer": Kind("categorizer.json", "a saved categorizer", "train one with `fashionlens categorize train`"),
    "aligned": Kind("encoder.json", "an aligned encoder run (trained projection heads)",
                    flat=("dim", "hidden", "head", "dropout")),
    "finetuned": Kind("encoder.json", "a fine-tuned retrieval run"),
    "tuned": Kind("encoder.json", "a fine-tuned image backbone", flat=("unfreeze_blocks", "image_size")),
    "perceptual": Kind("encoder.json", "a perceptual model run", "train one with `fashionlens perceptual train`",
                       flat=("mode", "hidden", "dropout", "triplets_source", "best_val_2afc")),
    "checkpoint": Kind("state.json", "a training checkpoint"),
    "reranker": Kind("reranker.json", "a cross-modal re-ranker"),
    # config.json is a common name (Hugging Face models): only a file that says kind "sales" is one
    "sales": Kind("config.json", "a sales model run", "make one with `fashionlens sales fit`", by_name=False),
}
_RESERVED = ("kind", "format_version", "config")


def write_manifest(folder: str | Path, kind: str, config: dict[str, Any] | None = None, /, **fields: Any) -> Path:
    """Write `folder`'s manifest of `kind` (atomically) with its config and any other fields."""
    spec = KINDS[kind]
    clash = sorted(set(fields) & set(_RESERVED))
    if clash:
        raise ValueError(f"manifest fields {clash} are set by write_manifest itself")
    path = Path(folder) / spec.file
    write_json(path, {"kind": kind, "format_version": spec.version, "config": dict(config or {}), **fields})
    return path


def own_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """A read manifest's own fields (all but kind, format_version and config), to write it back."""
    return {k: v for k, v in meta.items() if k not in _RESERVED}


def read_manifest(folder: str | Path, kinds: str | tuple[str, ...]) -> dict[str, Any]:
    """`folder`'s manifest as a dict with kind, format_version, config (and its other fields), when
    the folder passes its integrity check and is one of `kinds`.

    FileNotFoundError when no manifest of those kinds is there (naming what the folder is instead,
    as a FolderError, when it is another fashionlens folder); FolderError for an unreadable
    manifest, a kind not in `kinds`, or a format_version newer than this code reads."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    root = check_dir(folder)
    want = " or ".join(dict.fromkeys(KINDS[k].what for k in kinds))
    files = list(dict.fromkeys(KINDS[k].file for k in kinds))
    path = next((root / f for f in files if (root / f).is_file()), None)
    if path is None:
        other = identify(root)
        if other is not None:
            raise FolderError(f"{folder} is {KINDS[other].what} ({KINDS[other].file}), not {want}")
        hint = KINDS[kinds[0]].hint
        raise FileNotFoundError(f"{folder} is not {want}: {files[0]} is missing" + (f"; {hint}" if hint else ""))
    meta = _read(path)
    kind = meta["kind"]
    if kind not in kinds:
        what = KINDS[kind].what if kind in KINDS else f"of kind {kind!r}"
        raise FolderError(f"{folder} is {what} ({path.name} says kind {kind!r}), not {want}")
    version, current = meta["format_version"], KINDS[kind].version
    if version > current:
        raise FolderError(f"{path}: format_version {version} is newer than this fashionlens reads ({current}); "
                          f"upgrade fashionlens to open {folder}")
    return meta


def check_overwrite(folder: str | Path, kind: str, marks: tuple[str, ...] | None = ()) -> None:
    """FolderError unless a save of `kind` may go to `folder`: not another kind of ours (a
    categorizer saved over an index), and, for a save that replaces the folder whole (`marks` not
    None), absent, empty or one of ours (`utils.check_replaceable`)."""
    if marks is not None:
        check_replaceable(folder, marks)
    other = identify(folder) if Path(folder).is_dir() else None
    if other not in (None, kind):
        raise FolderError(f"{folder} is {KINDS[other].what} ({KINDS[other].file}): saving {KINDS[kind].what} "
                          "there would replace it, so choose another folder")


def identify(folder: str | Path) -> str | None:
    """The kind of fashionlens folder `folder` is, from the manifest it holds (None: not one of ours)."""
    root = Path(folder)
    for name in dict.fromkeys(k.file for k in KINDS.values()):
        if (root / name).is_file():
            try:
                kind = _read(root / name)["kind"]
            except FolderError:
                continue
            if kind in KINDS:
                return kind
    return None


def _read(path: Path) -> dict[str, Any]:
    """The manifest at `path` in the current shape; a format_version 1 file is upgraded."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FolderError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(meta, dict):
        raise FolderError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    if "format_version" in meta:
        version = meta["format_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FolderError(f"{path}: field 'format_version' is {version!r}, not a positive integer")
        if not isinstance(meta.get("kind"), str):
            raise FolderError(f"{path}: field 'kind' is {meta.get('kind')!r}, not a kind name")
        if not isinstance(meta.get("config"), dict):
            raise FolderError(f"{path}: field 'config' is {meta.get('config')!r}, not a mapping")
        return meta
    return _upgrade_v1(path, meta)


def _upgrade_v1(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A manifest of the layouts saved before format_version: encoder runs named their kind, index
    and categorizer folders had a "format" field, checkpoints neither."""
    if meta.get("format", 1) not in (1, "fashionlens.categorizer/1"):
        raise FolderError(f"{path}: unsupported format {meta['format']!r} (this fashionlens reads format 1)")
    kind = meta.get("kind")
    if not isinstance(kind, str):  # only encoder.json named its kind; the others are told by file name
        owners = [k for k, spec in KINDS.items() if spec.file == path.name and spec.by_name]
        kind = owners[0] if len(owners) == 1 else kind
    if not isinstance(kind, str):
        raise FolderError(f"{path}: field 'kind' is {kind!r}, not a kind name")
    flat = KINDS[kind].flat if kind in KINDS else ()
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    config = {**{k: meta[k] for k in flat if k in meta}, **config}
    rest = {k: v for k, v in meta.items() if k not in (*_RESERVED, "format", *flat)}
    return {"kind": kind, "format_version": 1, "config": config, **rest}
