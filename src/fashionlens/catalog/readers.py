"""Catalog in: `load_catalog` reads any layout of `formats` and `validate`s every item."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fashionlens.catalog import formats
from fashionlens.catalog.core import (
    Catalog,
    CatalogError,
    ImportReport,
    StrictImportError,
)
from fashionlens.catalog.images import ImageError, open_image

__all__ = ["CatalogError", "StrictImportError", "load_catalog", "validate"]


def load_catalog(
    path: str | Path,
    *,
    format: str = "auto",
    id_col: str | None = None,
    image_col: str | None = None,
    text_col: str | None = None,
    encoding: str | None = None,
    strict: bool = False,
    limit: int | None = None,
    check_images: bool = True,
    progress: bool = False,
) -> Catalog:
    """Read a catalog, validate every item, skip (and report) the bad ones.

    `path` is any layout in `formats.FORMATS` (Kaggle, VISUELLE, H&M folder, CSV/Parquet table with
    the column mapping `id_col`/`image_col`/`text_col`, folder of labelled photos), detected from the
    files present unless `format` names one. `encoding` forces the text encoding of the table.
    Warnings (a guessed encoding, no text column) are issued as `CatalogWarning` and kept in the report.
    """
    p = Path(path)
    read = formats.read(p, format, formats.Options(id_col, image_col, text_col, encoding)).warn()
    df = read.df if limit is None else read.df.head(limit)
    if df.empty:
        raise CatalogError(f"{p}: the catalog is empty")
    cat = validate(df, read.root, source=str(p), strict=strict, check_images=check_images, progress=progress)
    cat.report.format, cat.report.encoding, cat.report.warnings = read.format, read.encoding, read.warnings
    return cat


def _escapes(image: str, root: str) -> bool:
    """Whether a written image path leaves `root` (absolute, normalised) lexically.

    Links on disk are followed, so only the written path is judged; a '..' component is refused
    outright, because after a symlinked folder it does not lead where it reads.
    """
    if ".." in Path(image).parts:
        return True
    return os.path.isabs(image) and os.path.commonpath([os.path.normpath(image), root]) != root


def validate(
    df: pd.DataFrame,
    root: Path,
    *,
    source: str,
    strict: bool = False,
    check_images: bool = True,
    check_files: bool = True,
    progress: bool = False,
    require_text: bool = True,
) -> Catalog:
    """Drop bad items with a reason each: missing or duplicate id, empty text, path outside root, bad image.

    `image` holds paths relative to `root` (as written in a table) or absolute ones inside it. Photos
    are decoded with `check_images`; otherwise `check_files` still checks that each one exists.
    """
    report = ImportReport(source=source, n_read=len(df))
    root_abs = os.path.abspath(root)
    has_text = df["text"].astype(str).str.strip().ne("").any()
    keep: list[int] = []
    paths: list[str] = []
    seen: set[str] = set()

    def bad(item_id: str, reason: str) -> None:
        if strict:
            raise StrictImportError(f"item {item_id}: {reason}")
        report.add(item_id, reason)

    rows = range(len(df))
    if progress:
        from fashionlens.progress import track

        rows = track(rows, description="validating catalog")  # type: ignore[assignment]
    ids, texts, images = formats.clean_ids(df["id"]), df["text"].tolist(), df["image"].tolist()
    for i in rows:
        item_id, text, image = ids[i], texts[i], images[i]
        image = os.fspath(image).strip() if isinstance(image, str | os.PathLike) else ""
        if not item_id or item_id == "nan":
            bad(f"row {i + 1}", "missing id")  # rows count from 1 after the header
            continue
        if item_id in seen:
            bad(item_id, "duplicate id (first occurrence kept)")
            continue
        seen.add(item_id)
        if require_text and has_text and (not isinstance(text, str) or not text.strip()):
            bad(item_id, "empty text")
            continue
        if not image:
            bad(item_id, "no image path")
            continue
        if _escapes(image, root_abs):
            bad(item_id, f"image path escapes the catalog root: {image}")
            continue
        path = os.path.normpath(os.path.join(root_abs, image))  # not resolved: links stay under the root
        reason = _check_image(path) if check_images else None
        if reason is None and check_files and not check_images and not os.path.isfile(path):
            reason = "file not found"
        if reason:
            bad(item_id, reason)
            continue
        keep.append(i)
        paths.append(path)
    out = df.iloc[keep].copy()
    out["id"] = [ids[i] for i in keep]
    out["image"] = paths
    out["text"] = out["text"].fillna("").astype(str)
    cat = Catalog(out, root=root, report=report)
    if len(cat) == 0:
        raise CatalogError(f"{source}: no usable items ({report.summary()})")
    return cat


def _check_image(path: str) -> str | None:
    try:
        open_image(path)
    except ImageError as e:
        return str(e).split(": ", 1)[-1]
    return None
