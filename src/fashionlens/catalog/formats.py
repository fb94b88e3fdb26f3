"""Catalog layouts: one reader per layout, picked by the files present (or by name), for every command.

A reader turns a path into a `Read`: a frame with columns id, image, text and attributes, where image
is the path *as written* (relative to the root, or absolute) so that validation can check it
lexically. Text files are decoded by `decode`: UTF-8 (with or without a BOM), else cp1252/latin-1
with a warning naming the file and the first line that was not UTF-8.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fashionlens.catalog.core import CatalogError, CatalogWarning

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq"}
WEEK_PREFIX = "week_"


@dataclass
class Options:
    """What a user can say about a catalog beyond its path."""

    id_col: str | None = None
    image_col: str | None = None
    text_col: str | None = None
    encoding: str | None = None  # None: detect


@dataclass
class Read:
    """A reader's output, before validation."""

    df: pd.DataFrame
    root: Path
    format: str
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)

    def warn(self) -> Read:
        """Issue the warnings as `CatalogWarning`s, pointing at the caller's caller (the loader's user)."""
        for w in self.warnings:
            warnings.warn(w, CatalogWarning, stacklevel=3)
        return self


# ---- text files ---------------------------------------------------------------------------------
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _line_of(data: bytes, pos: int, encoding: str) -> int:
    return data[:pos].decode(encoding, errors="replace").count("\n") + 1


def decode(path: Path, encoding: str | None = None) -> tuple[str, str, str | None]:
    """(text, encoding used, warning or None). A BOM decides; else UTF-8, then cp1252, then latin-1.

    A forced `encoding`, or a BOM, that the bytes do not follow is an error naming file and line.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"{path}: cannot read it ({e.strerror})") from None
    forced = encoding or next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if forced:
        try:
            return data.decode(forced), forced, None
        except LookupError:
            raise CatalogError(f"{path}: unknown encoding '{forced}'") from None
        except UnicodeDecodeError as e:
            raise CatalogError(f"{path} line {_line_of(data, e.start, forced)}: not valid {forced} "
                               f"(byte 0x{data[e.start]:02x}: {e.reason})") from None
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as e:
        where = f"line {_line_of(data, e.start, 'utf-8')}, byte 0x{data[e.start]:02x}"
    try:
        text, enc = data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:  # cp1252 leaves 5 bytes undefined; latin-1 decodes any byte
        text, enc = data.decode("latin-1"), "latin-1"
    return text, enc, (f"{path}: not UTF-8 ({where}); read it as {enc}. If names look wrong, "
                       "save the file as UTF-8 or pass load_catalog(..., encoding=...)")


def read_csv(path: Path, encoding: str | None = None, **kw) -> tuple[pd.DataFrame, str, str | None]:
    """A CSV/TSV file through `decode` and pandas; parse errors name the file (pandas names the line)."""
    text, enc, warning = decode(path, encoding)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, **kw), enc, warning
    except pd.errors.EmptyDataError:
        raise CatalogError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as e:
        raise CatalogError(f"{path}: cannot parse it as a table ({str(e).strip()})") from None


def read_table_file(path: Path, encoding: str | None = None, **kw) -> tuple[pd.DataFrame, str | None, str | None]:
    """A CSV, TSV or Parquet file as a frame, with the encoding used (None for Parquet) and a warning."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        try:
            return pd.read_parquet(path), None, None
        except (OSError, ValueError) as e:
            raise CatalogError(f"{path}: cannot read it as Parquet ({e})") from None
    return read_csv(path, encoding, **kw)


def header(path: Path) -> list[str]:
    """The column names of a CSV file, from its first line only (for detection)."""
    with path.open("rb") as fh:
        first = fh.readline(65536)
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    return next(csv.reader([first.decode("utf-8-sig", errors="replace")], delimiter=sep), [])


def clean_ids(values: pd.Series) -> list[str]:
    """Ids as stripped strings; a missing cell becomes "" (a bad row), never the string "nan"."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            out.append("")
        elif isinstance(v, float) and v.is_integer():  # integer ids of a Parquet column with gaps
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return out


def written(values: pd.Series) -> list[str]:
    """Image paths as written in a table ("" where the cell is empty)."""
    return [v.strip() if isinstance(v, str) else "" for v in values]


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    """id, image, text first; ids cleaned."""
    rest = [c for c in df.columns if c not in ("id", "image", "text")]
    df = df[["id", "image", "text", *rest]].copy()
    df["id"] = clean_ids(df["id"])
    return df


# ---- readers ------------------------------------------------------------------------------------
def read_styles(path: Path, encoding: str | None = None) -> tuple[pd.DataFrame, str, str | None]:
    """Kaggle styles.csv, all strings. The full set has unquoted commas in the name (the last column):
    the spill-over is glued back into it instead of dropping the row."""
    text, enc, warning = decode(path, encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as e:
        raise CatalogError(f"{path} line {reader.line_num}: {e}") from None
    if not rows:
        return pd.DataFrame(columns=["id"]), enc, warning
    names, n = rows[0], len(rows[0])
    body = [r[: n - 1] + [",".join(r[n - 1 :])] if len(r) > n else r + [""] * (n - len(r)) for r in rows[1:] if r]
    return pd.DataFrame(body, columns=names, dtype=str), enc, warning


def read_kaggle(path: Path, opts: Options) -> Read:
    """styles.csv (small or full set) + images/<id>.jpg; productDisplayName is the text."""
    styles = path / "styles.csv" if path.is_dir() else path
    raw, enc, warning = read_styles(styles, opts.encoding)
    warnings = [warning] if warning else []
    if "id" not in raw.columns:
        raise CatalogError(f"{styles}: no 'id' column; columns are: {', '.join(raw.columns)}")
    df = raw.rename(columns={"productDisplayName": "text"})
    if "text" not in df.columns:
        df["text"] = ""
        warnings.append(f"{styles}: no 'productDisplayName' column, so every item's text is empty: "
                        "text search, text-aligned indexes and zero-shot categories have nothing to use")
    df["image"] = [f"images/{str(i).strip()}.jpg" for i in df["id"]]
    return Read(_frame(df), styles.parent, "kaggle", enc, warnings)


def read_table(path: Path, opts: Options) -> Read:
    """Any CSV/TSV/Parquet: id, image (relative to the table's folder) and text columns, mapped by name."""
    id_col, image_col, text_col = opts.id_col or "id", opts.image_col or "image", opts.text_col or "text"
    raw, enc, warning = read_table_file(path, opts.encoding, dtype=str)
    warnings = [warning] if warning else []
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
        warnings.append(f"{path}: no text column '{text_col}' (set --text-col), so every item's text is empty")
    df["image"] = written(df["image"])
    return Read(_frame(df), path.parent, "table", enc, warnings)


def _walk_images(folder: Path) -> list[Path]:
    """Image files under `folder`, following symlinked folders (each real folder once: no loops)."""
    seen: set[tuple[int, int]] = set()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        base = Path(dirpath)
        found += [base / f for f in filenames if Path(f).suffix.lower() in IMAGE_SUFFIXES and (base / f).is_file()]
    return sorted(found)


def read_folder(path: Path, opts: Options) -> Read:
    """A folder of photos; the first sub-folder of each photo is its label (and its text)."""
    rows = []
    for f in _walk_images(path):
        rel = f.relative_to(path)
        label = rel.parts[0] if len(rel.parts) > 1 else ""
        rows.append({"id": rel.with_suffix("").as_posix(), "image": rel.as_posix(),
                     "text": label.replace("_", " "), "label": label})
    return Read(pd.DataFrame(rows, columns=["id", "image", "text", "label"]), path, "folder")


def read_visuelle(path: Path, opts: Options) -> Read:
    """VISUELLE: sales.csv (external_code, season, category, color, fabric, image_path, 0..11).

    The id is external_code, the text "<color> <fabric> <category>"; the weekly units sold in week k
    after launch become `week_k` (float); season/category/color/fabric and any other column are kept.
    """
    table = path / "sales.csv" if path.is_dir() else path
    if not table.is_file():
        raise CatalogError(f"{path}: no VISUELLE sales.csv here")
    raw, enc, warning = read_csv(table, opts.encoding, dtype={"external_code": str})
    missing = [c for c in ("external_code", "season", "category", "image_path") if c not in raw.columns]
    if missing:
        raise CatalogError(f"{table}: not the VISUELLE layout, missing columns {missing}")
    weeks = sorted((c for c in raw.columns if str(c).isdigit()), key=int)
    if not weeks:
        raise CatalogError(f"{table}: no weekly sales columns named 0, 1, ...")
    for c in ("color", "fabric"):
        if c not in raw.columns:
            raw[c] = ""
    attrs = {c: raw[c].fillna("").astype(str) for c in ("season", "category", "color", "fabric")}
    df = pd.DataFrame({"id": raw["external_code"], "image": written(raw["image_path"]),
                       "text": (attrs["color"] + " " + attrs["fabric"] + " " + attrs["category"]).str.strip(),
                       **attrs})
    sales = raw[weeks].apply(pd.to_numeric, errors="coerce")
    for w in weeks:
        df[f"{WEEK_PREFIX}{w}"] = sales[w].to_numpy(dtype=float)
    used = {"external_code", "image_path", *attrs, *weeks}
    for c in raw.columns:
        if c not in used:
            df[c] = raw[c]
    return Read(_frame(df), table.parent, "visuelle", enc, [warning] if warning else [])


def read_hm(path: Path, opts: Options) -> Read:
    """H&M: articles.csv + images/<first 3 digits>/<article_id>.jpg (photos exist for only some).

    The id is article_id as a 10-digit string, the text "<prod_name>. <detail_desc>"; every other
    column (product_type_name, colour_group_name, ...) is an attribute.
    """
    table = path / "articles.csv" if path.is_dir() else path
    raw, enc, warning = read_csv(table, opts.encoding, dtype={"article_id": str, "product_code": str})
    if "article_id" not in raw.columns:
        raise CatalogError(f"{table}: no 'article_id' column; columns are: {', '.join(map(str, raw.columns))}")
    ids = [i.zfill(10) if i else "" for i in clean_ids(raw["article_id"])]
    parts = [raw[c].fillna("").astype(str).str.strip() if c in raw.columns else pd.Series("", index=raw.index)
             for c in ("prod_name", "detail_desc")]
    text = [f"{n}. {d}" if n and d else n or d for n, d in zip(*parts, strict=True)]
    df = raw.drop(columns=["article_id"]).assign(
        id=ids, image=[f"images/{i[:3]}/{i}.jpg" if i else "" for i in ids], text=text)
    return Read(_frame(df), table.parent, "hm", enc, [warning] if warning else [])


# ---- registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    name: str
    description: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, Options], Read]


def _is_visuelle_table(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() == ".csv" and {"external_code", "image_path"} <= set(header(p))


FORMATS: dict[str, Format] = {f.name: f for f in (  # detection order: the first that matches reads it
    Format("kaggle", "Kaggle Fashion Product Images: styles.csv + images/<id>.jpg",
           lambda p: p.is_dir() and (p / "styles.csv").is_file(), read_kaggle),
    Format("visuelle", "VISUELLE: sales.csv (external_code, ..., image_path, 0..11) + images/",
           lambda p: (p.is_dir() and (p / "sales.csv").is_file()) or _is_visuelle_table(p), read_visuelle),
    Format("hm", "H&M: articles.csv + images/<3 digits>/<article_id>.jpg",
           lambda p: p.is_dir() and (p / "articles.csv").is_file(), read_hm),
    Format("table", "a CSV/TSV/Parquet table with id, image and text columns",
           lambda p: p.is_file() and p.suffix.lower() in TABLE_SUFFIXES, read_table),
    Format("folder", "a folder of photos whose sub-folders are labels", lambda p: p.is_dir(), read_folder),
)}


def detect_format(path: str | Path) -> str:
    """The name of the format that reads `path`, judged by the files present."""
    p = Path(path)
    for f in FORMATS.values():
        if f.detect(p):
            return f.name
    raise CatalogError(f"{p}: not a catalog (expected a folder or a .csv/.tsv/.parquet table)")


def read(path: str | Path, format: str = "auto", opts: Options | None = None) -> Read:
    """Read `path` with the named format, or the detected one (`format="auto"`)."""
    p, opts = Path(path), opts or Options()
    if not p.exists():
        raise CatalogError(f"catalog path does not exist: {p}")
    name = detect_format(p) if format == "auto" else format
    if name not in FORMATS:
        raise CatalogError(f"unknown catalog format '{format}'; choose auto or one of {', '.join(FORMATS)}")
    mapped = [flag for flag, v in (("--id-col", opts.id_col), ("--image-col", opts.image_col),
                                   ("--text-col", opts.text_col)) if v]
    if mapped and name != "table":
        raise CatalogError(f"{p} is a {name} catalog: {', '.join(mapped)} only apply to a CSV/Parquet table")
    return FORMATS[name].read(p, opts)
