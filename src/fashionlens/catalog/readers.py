"""Catalog readers: Kaggle "Fashion Product Images" layout, any CSV/Parquet, a folder of labelled images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fashionlens.catalog.core import Catalog, ImportReport
from fashionlens.catalog.images import ImageError, open_image
from fashionlens.errors import InvalidInputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


class CatalogError(InvalidInputError):
    """The catalog as a whole cannot be read (missing path, empty, unknown columns)."""


class StrictImportError(CatalogError):
    """Raised by `strict=True` imports at the first bad item."""


def load_catalog(
    path: str | Path,
    *,
    id_col: str | None = None,
    image_col: str | None = None,
    text_col: str | None = None,
    strict: bool = False,
    limit: int | None = None,
    check_images: bool = True,
    progress: bool = False,
) -> Catalog:
    """Read a catalog, validate every item, skip (and report) the bad ones.

    `path` is a Kaggle-layout folder (styles.csv + images/), a CSV/Parquet table (column mapping via
    `id_col`/`image_col`/`text_col`), or a folder whose sub-folders are labels.
    """
    p = Path(path)
    if not p.exists():
        raise CatalogError(f"catalog path does not exist: {p}")
    if p.is_dir() and (p / "styles.csv").is_file():
        df, root = _read_kaggle(p)
    elif p.is_file() and p.suffix.lower() in {".csv", ".parquet", ".pq", ".tsv"}:
        df, root = _read_table(p, id_col or "id", image_col or "image", text_col or "text")
    elif p.is_dir():
        df, root = _read_folder(p)
    else:
        raise CatalogError(f"{p}: not a catalog (expected a folder or a .csv/.parquet table)")
    if limit is not None:
        df = df.head(limit)
    if df.empty:
        raise CatalogError(f"{p}: the catalog is empty")
    return validate(df, root, source=str(p), strict=strict, check_images=check_images, progress=progress)


def _read_kaggle(folder: Path) -> tuple[pd.DataFrame, Path]:
    """styles.csv (small or full set) + images/<id>.jpg; productDisplayName is the text."""
    raw = _read_styles(folder / "styles.csv")
    if "id" not in raw.columns:
        raise CatalogError(f"{folder / 'styles.csv'}: no 'id' column")
    df = raw.rename(columns={"productDisplayName": "text"})
    if "text" not in df.columns:
        df["text"] = ""
    df["image"] = [str(folder / "images" / f"{i}.jpg") for i in df["id"]]
    return _order(df), folder


def _read_styles(path: Path) -> pd.DataFrame:
    """The full Kaggle set has rows with unquoted commas in the name (the last column): glue the
    spill-over back into it instead of dropping the row."""
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return pd.DataFrame(columns=["id"])
    header, n = rows[0], len(rows[0])
    body = [r[: n - 1] + [",".join(r[n - 1 :])] if len(r) > n else r + [""] * (n - len(r)) for r in rows[1:] if r]
    return pd.DataFrame(body, columns=header, dtype=str)


def _read_table(path: Path, id_col: str, image_col: str, text_col: str) -> tuple[pd.DataFrame, Path]:
    if path.suffix.lower() in {".parquet", ".pq"}:
        raw = pd.read_parquet(path)
    else:
        raw = pd.read_csv(path, dtype=str, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    for col, flag in ((id_col, "--id-col"), (image_col, "--image-col")):
        if col not in raw.columns:
            raise CatalogError(
                f"{path}: no column '{col}' (set {flag}); columns are: {', '.join(map(str, raw.columns))}"
            )
    df = raw.rename(columns={id_col: "id", image_col: "image"})
    if text_col in raw.columns:
        df = df.rename(columns={text_col: "text"})
    else:
        df["text"] = ""
    root = path.parent
    df["image"] = [str(root / str(v)) if isinstance(v, str) and v else "" for v in df["image"]]
    return _order(df), root


def _read_folder(folder: Path) -> tuple[pd.DataFrame, Path]:
    rows = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
            rel = f.relative_to(folder)
            label = rel.parts[0] if len(rel.parts) > 1 else ""
            rows.append({"id": str(rel.with_suffix("")), "image": str(f), "text": label.replace("_", " "), "label": label})
    return pd.DataFrame(rows, columns=["id", "image", "text", "label"]), folder


def _order(df: pd.DataFrame) -> pd.DataFrame:
    rest = [c for c in df.columns if c not in ("id", "image", "text")]
    df = df[["id", "image", "text", *rest]].copy()
    df["id"] = df["id"].astype(str).str.strip()
    return df


def validate(
    df: pd.DataFrame,
    root: Path,
    *,
    source: str,
    strict: bool = False,
    check_images: bool = True,
    progress: bool = False,
    require_text: bool = True,
) -> Catalog:
    """Drop bad items with a reason each: duplicate id, empty text, path outside root, bad image."""
    report = ImportReport(source=source, n_read=len(df))
    root_resolved = root.resolve()
    has_text = df["text"].astype(str).str.strip().ne("").any()
    keep: list[int] = []
    seen: set[str] = set()

    def bad(i: int, item_id: str, reason: str) -> None:
        if strict:
            raise StrictImportError(f"item {item_id}: {reason}")
        report.add(item_id, reason)

    rows = range(len(df))
    if progress:
        from fashionlens.progress import track

        rows = track(rows, description="validating catalog")  # type: ignore[assignment]
    ids, texts, images = df["id"].tolist(), df["text"].tolist(), df["image"].tolist()
    for i in rows:
        item_id, text, image = ids[i], texts[i], images[i]
        if not item_id or item_id == "nan":
            bad(i, f"row {i}", "missing id")
            continue
        if item_id in seen:
            bad(i, item_id, "duplicate id (first occurrence kept)")
            continue
        seen.add(item_id)
        if require_text and has_text and (not isinstance(text, str) or not text.strip()):
            bad(i, item_id, "empty text")
            continue
        if not image:
            bad(i, item_id, "no image path")
            continue
        img = Path(image).resolve()
        if not img.is_relative_to(root_resolved):
            bad(i, item_id, f"image path escapes the catalog root: {image}")
            continue
        if check_images:
            reason = _check_image(img)
            if reason:
                bad(i, item_id, reason)
                continue
        keep.append(i)
    out = df.iloc[keep].copy()
    out["image"] = [str(Path(v).resolve()) for v in out["image"]]
    out["text"] = out["text"].fillna("").astype(str)
    cat = Catalog(out, root=root, report=report)
    if len(cat) == 0:
        raise CatalogError(f"{source}: no usable items ({report.summary()})")
    return cat


def _check_image(path: Path) -> str | None:
    try:
        open_image(path)
    except ImageError as e:
        return str(e).split(": ", 1)[-1]
    return None


READERS: dict[str, Callable[..., tuple[pd.DataFrame, Path]]] = {
    "kaggle": _read_kaggle,
    "folder": _read_folder,
}
