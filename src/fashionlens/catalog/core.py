"""The `Catalog`: validated items (id, image, text, attributes) backed by a DataFrame."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashionlens.errors import InvalidInputError, NotFoundError

CORE_COLUMNS = ("id", "image", "text")


class CatalogError(InvalidInputError):
    """The catalog as a whole cannot be read (missing path, empty, unknown columns)."""


class StrictImportError(CatalogError):
    """Raised by `strict=True` imports at the first bad item."""


class CatalogWarning(UserWarning):
    """The catalog reads, but something about it is probably not what the user meant."""


@dataclass
class Item:
    id: str
    image: str | None
    text: str
    attributes: dict[str, Any]


@dataclass
class ImportIssue:
    item_id: str
    reason: str


@dataclass
class ImportReport:
    """What an import read, kept and skipped (with the item id and the reason)."""

    source: str = ""
    n_read: int = 0
    issues: list[ImportIssue] = field(default_factory=list)
    format: str = ""
    encoding: str | None = None  # of the table read; None for Parquet and folders
    warnings: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.issues)

    @property
    def n_ok(self) -> int:
        return self.n_read - self.n_skipped

    def add(self, item_id: Any, reason: str) -> None:
        self.issues.append(ImportIssue(str(item_id), reason))

    def summary(self) -> str:
        s = f"{self.source}: read {self.n_read} items, kept {self.n_ok}, skipped {self.n_skipped}"
        if self.issues:
            reasons: dict[str, int] = {}
            for i in self.issues:
                key = i.reason.split(":")[0].split("(")[0].strip()
                reasons[key] = reasons.get(key, 0) + 1
            s += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) + ")"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "encoding": self.encoding,
            "warnings": list(self.warnings),
            "n_read": self.n_read,
            "n_ok": self.n_ok,
            "n_skipped": self.n_skipped,
            "issues": [{"id": i.item_id, "reason": i.reason} for i in self.issues],
        }


class Catalog:
    """Items of a fashion catalog. `df` has columns id, image (absolute path), text + attributes."""

    def __init__(self, df: pd.DataFrame, root: str | Path = ".", report: ImportReport | None = None):
        missing = [c for c in CORE_COLUMNS if c not in df.columns]
        if missing:
            raise InvalidInputError(f"catalog frame lacks columns: {missing}")
        self.df = df.reset_index(drop=True)
        self.df["id"] = self.df["id"].astype(str)
        self.root = Path(root)
        self.report = report or ImportReport(source=str(root), n_read=len(df))

    # ---- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.df)

    def __iter__(self) -> Iterator[Item]:
        attrs = self.attributes
        for row in self.df.itertuples(index=False):
            r = row._asdict()
            yield Item(r["id"], r["image"], r["text"], {a: r[a] for a in attrs})

    def __repr__(self) -> str:
        return f"Catalog({len(self)} items, attributes={self.attributes}, root={str(self.root)!r})"

    @property
    def ids(self) -> list[str]:
        return self.df["id"].tolist()

    @property
    def texts(self) -> list[str]:
        return self.df["text"].fillna("").astype(str).tolist()

    @property
    def images(self) -> list[str]:
        return self.df["image"].tolist()

    @property
    def attributes(self) -> list[str]:
        return [c for c in self.df.columns if c not in CORE_COLUMNS]

    def column(self, name: str) -> np.ndarray:
        if name not in self.df.columns:
            raise NotFoundError(f"unknown column '{name}'; catalog columns: {', '.join(self.df.columns)}")
        return self.df[name].to_numpy()

    def item(self, item_id: str) -> Item:
        rows = self.df.index[self.df["id"] == str(item_id)]
        if len(rows) == 0:
            raise NotFoundError(f"no item with id '{item_id}'")
        r = self.df.loc[rows[0]].to_dict()
        return Item(r["id"], r["image"], r["text"], {a: r[a] for a in self.attributes})

    # ---- subsets ----------------------------------------------------------------------------
    def subset(self, rows: Sequence[int] | np.ndarray) -> Catalog:
        """A catalog of the given row positions (or a boolean mask)."""
        return Catalog(self.df.iloc[np.asarray(rows)].copy(), self.root, self.report)

    def select_ids(self, ids: Sequence[str]) -> Catalog:
        pos = {v: i for i, v in enumerate(self.df["id"])}
        return self.subset([pos[str(i)] for i in ids if str(i) in pos])

    def sample(self, n: int, seed: int = 0) -> Catalog:
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=n, replace=False)))

    def split(self, test_size: float | int, seed: int = 0, stratify: str | None = None) -> tuple[Catalog, Catalog]:
        """Seeded (optionally stratified) train/test split by item."""
        from sklearn.model_selection import train_test_split

        strat = None
        if stratify:
            labels = self.df[stratify].astype(str)
            counts = labels.map(labels.value_counts())
            strat = labels.where(counts >= 2, "__rare__")  # singletons cannot be stratified
        tr, te = train_test_split(np.arange(len(self)), test_size=test_size, random_state=seed, stratify=strat)
        return self.subset(np.sort(tr)), self.subset(np.sort(te))

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        from fashionlens.utils import atomic_write

        with atomic_write(path) as tmp:
            self.df.to_parquet(tmp, index=False)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        df = pd.read_parquet(path)
        return cls(df, root=Path(path).parent, report=ImportReport(source=str(path), n_read=len(df)))
