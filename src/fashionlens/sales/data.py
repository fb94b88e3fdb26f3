"""Sales data in: VISUELLE, H&M (articles + transactions) and listings tables, as `Catalog`s.

Every importer returns a validated `Catalog` whose attributes include the sales targets, plus a
boolean `has_image` column. Items without a usable photo are kept (metadata-only models use them):
their `image` is the path where the photo would be, and image features for them are a zero vector
(`has_image` False) — see `fashionlens.sales.forecast.build_features`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fashionlens.catalog import (
    Catalog,
    CatalogError,
    CatalogWarning,
    ImageError,
    formats,
    load_catalog,
    open_image,
    validate,
)
from fashionlens.errors import InvalidInputError

WEEK_PREFIX = formats.WEEK_PREFIX
LAYOUTS = ("auto", "visuelle", "hm", "listings", "catalog")
_TRUE = {"1", "true", "yes", "y", "t", "sold"}
_FALSE = {"0", "false", "no", "n", "f", "unsold", "not sold"}


def week_columns(catalog: Catalog) -> list[str]:
    """The weekly-sales columns (week_0, week_1, ...) in week order."""
    cols = [c for c in catalog.df.columns if c.startswith(WEEK_PREFIX) and c[len(WEEK_PREFIX):].isdigit()]
    return sorted(cols, key=lambda c: int(c[len(WEEK_PREFIX):]))


def _has_image(paths: list[str]) -> list[bool]:
    out = []
    for p in paths:
        try:
            open_image(p).close()
            out.append(True)
        except ImageError:
            out.append(False)
    return out


def _finish(df: pd.DataFrame, root: Path, source: str) -> Catalog:
    df = df.copy()
    # no photo: point at a path that cannot exist under the root so the item is kept, photo-less
    df["image"] = [p or f".no-photo/{i}" for p, i in zip(df["image"], df["id"], strict=True)]
    df["has_image"] = _has_image([str(root / p) for p in df["image"]])
    rest = [c for c in df.columns if c not in ("id", "image", "text")]
    return validate(df[["id", "image", "text", *rest]], root, source=source, require_text=False,
                    check_images=False, check_files=False)


def load_visuelle(path: str | Path) -> Catalog:
    """VISUELLE layout: sales.csv (external_code, season, category, color, fabric, image_path, 0..11).

    Read by `formats.read_visuelle` (`week_0..week_11`: units sold in week k after launch; the text
    "<color> <fabric> <category>"), plus `total` (12-week sum) and from the season code
    `season_type` (SS/AW) and `year`.
    """
    p = Path(path)
    read = formats.read_visuelle(p, formats.Options()).warn()
    df = read.df
    season = df["season"].str.extract(r"^([A-Za-z]+)(\d{2,4})$")
    df["season_type"] = season[0]
    df["year"] = pd.to_numeric(season[1], errors="coerce").map(lambda y: y + 2000 if y < 100 else y)
    weeks = [c for c in df.columns if c.startswith(WEEK_PREFIX) and c[len(WEEK_PREFIX):].isdigit()]
    df["total"] = df[weeks].sum(axis=1, min_count=len(weeks)).to_numpy(dtype=float)
    return _finish(df, read.root, str(p / "sales.csv" if p.is_dir() else p))


def load_hm(path: str | Path, start: str | None = None, end: str | None = None) -> Catalog:
    """H&M layout: articles.csv + transactions_train.csv aggregated over [start, end] (dates, inclusive).

    Articles are read by `formats.read_hm` (10-digit ids, text "<prod_name>. <detail_desc>"). Per
    article: `sales` (purchases in the window, 0 if none), `revenue` (sum of prices), `price`
    (mean price paid, NaN if unsold), `sold` (any purchase), `first_sale` (date) and
    `days_to_first_sale` (from the window start). The window defaults to all transactions.
    Photos live at images/<first 3 digits>/<article_id>.jpg; only some exist (`has_image`).
    """
    root = Path(path)
    arts, trans = root / "articles.csv", root / "transactions_train.csv"
    for f in (arts, trans):
        if not f.is_file():
            raise CatalogError(f"{root}: not the H&M layout, {f.name} is missing")
    a = formats.read_hm(root, formats.Options()).warn().df
    t = pd.read_csv(trans, dtype={"article_id": str, "customer_id": str}, parse_dates=["t_dat"])
    if "article_id" not in t.columns:
        raise CatalogError(f"{trans}: no 'article_id' column")
    t["article_id"] = t["article_id"].str.zfill(10)
    lo = pd.Timestamp(start) if start else t["t_dat"].min()
    hi = pd.Timestamp(end) if end else t["t_dat"].max()
    if lo > hi:
        raise InvalidInputError(f"empty sales window: start {lo.date()} is after end {hi.date()}")
    t = t[(t["t_dat"] >= lo) & (t["t_dat"] <= hi)]
    agg = t.groupby("article_id").agg(sales=("t_dat", "size"), revenue=("price", "sum"),
                                      price=("price", "mean"), first_sale=("t_dat", "min"))
    df = a.merge(agg, left_on="id", right_index=True, how="left")
    df["sales"] = df["sales"].fillna(0).astype(float)
    df["revenue"] = df["revenue"].fillna(0.0)
    df["sold"] = df["sales"] > 0
    df["days_to_first_sale"] = (df["first_sale"] - lo).dt.days.astype(float)
    return _finish(df, root, f"{root} (sales {lo.date()}..{hi.date()})")


def _parse_flag(values: pd.Series, column: str) -> pd.Series:
    if values.dtype == bool:
        return values
    s = values.astype(str).str.strip().str.lower()
    bad = ~s.isin(_TRUE | _FALSE)
    if bad.any():
        raise InvalidInputError(f"column '{column}': cannot read {s[bad].iloc[0]!r} as sold/not sold "
                         f"(use 1/0, true/false or yes/no)")
    return s.isin(_TRUE)


def load_listings(path: str | Path, *, id_col: str = "id", image_col: str = "image",
                  text_col: str = "title", sold_col: str = "sold") -> Catalog:
    """A listings table (CSV/Parquet): id, image (relative path, may be empty), title, sold, days_to_sale...

    `sold` becomes a boolean; `days_to_sale` (if present) stays numeric and is NaN for unsold items;
    columns whose name ends in `_at` or `date` are parsed as dates. Other columns are kept as they are.
    """
    p = Path(path)
    if not p.is_file():
        raise CatalogError(f"listings table not found: {p}")
    raw, _, warning = formats.read_table_file(p)
    if warning:
        warnings.warn(warning, CatalogWarning, stacklevel=2)
    for c in (id_col, sold_col):
        if c not in raw.columns:
            raise CatalogError(f"{p}: no column '{c}'; columns are: {', '.join(map(str, raw.columns))}")
    root = p.parent
    df = raw.rename(columns={id_col: "id"})
    df["id"] = df["id"].astype(str)
    df["image"] = formats.written(raw[image_col]) if image_col in raw.columns else ""
    if image_col in df.columns and image_col != "image":
        df = df.drop(columns=[image_col])
    df["text"] = df.pop(text_col).fillna("").astype(str) if text_col in df.columns else ""
    df[sold_col] = _parse_flag(df[sold_col], sold_col)
    if "days_to_sale" in df.columns:
        df["days_to_sale"] = pd.to_numeric(df["days_to_sale"], errors="coerce")
    for c in df.columns:
        if c not in ("id", "image", "text") and (c.endswith("_at") or c.endswith("date")):
            df[c] = pd.to_datetime(df[c], errors="coerce")
    return _finish(df, root, str(p))


def detect_layout(path: str | Path) -> str:
    """Which importer reads `path`: visuelle, hm, listings or catalog (anything load_catalog reads)."""
    p = Path(path)
    if not p.exists():
        return "catalog"  # load_sales_catalog says that it does not exist
    fmt = formats.detect_format(p)
    if fmt == "visuelle" or (fmt == "hm" and (p / "transactions_train.csv").is_file()):
        return fmt
    if p.is_file() and p.suffix.lower() in {".csv", ".tsv"} and "sold" in formats.header(p):
        return "listings"
    return "catalog"


def load_sales_catalog(path: str | Path, layout: str = "auto", **kw) -> Catalog:
    """Read any sales source as a `Catalog` (layout auto-detected from the files present)."""
    p = Path(path)
    if not p.exists():
        raise CatalogError(f"catalog path does not exist: {p}")
    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}")
    layout = detect_layout(p) if layout == "auto" else layout
    if layout == "visuelle":
        return load_visuelle(p)
    if layout == "hm":
        return load_hm(p, **kw)
    if layout == "listings":
        return load_listings(p, **kw)
    cat = load_catalog(p, **kw)
    cat.df["has_image"] = np.ones(len(cat), dtype=bool)  # load_catalog drops items without a photo
    return cat
