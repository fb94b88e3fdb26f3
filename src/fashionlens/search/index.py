"""Search and recommend: build an index directory from a catalog, query it by text or photo."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.config import Config
from fashionlens.embed import DEFAULT_CACHE, embed_catalog_images, embed_images, embed_texts
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError, NotFoundError
from fashionlens.index.base import make_index, open_index
from fashionlens.train.config import AlignConfig
from fashionlens.utils import (
    FolderError,
    atomic_dir,
    check_dir,
    read_json,
    require_file,
    write_json,
)

# Lite0 features with the garment's colour histogram fused in (docs/bench/retrieval_catalog.md)
DEFAULT_IMAGE_ENCODER = "efficientnet-lite0.colour"
DEFAULT_TEXT_ENCODER = "minilm-l6"
INDEX_FORMAT = 1
# a folder holding any of these is an index (or a crashed build of one) that a rebuild may replace
INDEX_MARKS = ("index.json", "vectors.npy", "catalog.parquet", "encoder")


@dataclass
class BuildConfig(Config):
    """How `build_index` turns a catalog into a searchable index directory."""

    encoder: str = DEFAULT_IMAGE_ENCODER
    text_encoder: str = DEFAULT_TEXT_ENCODER  # used when `encoder` has no text tower
    label_column: str | None = "articleType"  # teaches the alignment what "similar" means; None = off
    # a second SupCon label: similar items share the colour too (docs/bench/retrieval_catalog.md)
    colour_column: str | None = "baseColour"
    align: AlignConfig = field(default_factory=AlignConfig)
    cache_dir: str | None = str(DEFAULT_CACHE)
    backend: str = "exact"  # exact | hnsw | ivfpq | lance (docs/scaling.md)
    index_params: dict[str, Any] = field(default_factory=dict)


def build_index(catalog: Catalog, out: str | Path, config: BuildConfig | None = None,
                progress: bool = True) -> SearchIndex:
    """Embed, align (when the encoder lacks a text tower in its image space), index and save.

    Everything is written into a temporary sibling of `out` that replaces it in one rename
    (`atomic_dir`): a crash at any point leaves the old index or the new one, never a mix. Items whose photo fails to decode are reported and left out
    (listed in import_report.json)."""
    from fashionlens.encoders.registry import create, record_ref

    cfg = config or BuildConfig()
    out = Path(out)
    base = create(cfg.encoder)
    info: dict[str, Any] = {"format": INDEX_FORMAT, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with atomic_dir(out, marks=INDEX_MARKS) as tmp:
        if {"image", "text"} <= set(base.modalities):
            encoder, encoder_ref = base, record_ref(cfg.encoder, out)
            catalog, vectors = embed_catalog_images(encoder, catalog, cfg.cache_dir, progress=progress)
        else:
            catalog, _ = embed_catalog_images(base, catalog, cfg.cache_dir, progress=progress)  # align on these only
            encoder, history = align_encoders(base, create(cfg.text_encoder), catalog, tmp / "encoder", cfg,
                                              progress, name=f"run:{out / 'encoder'}")
            encoder_ref = "run:encoder"  # relative to the index directory
            info["alignment"] = history
            vectors = embed_images(encoder, catalog, cfg.cache_dir, progress=progress)
        info |= {"encoder": encoder_ref, "encoder_name": encoder.name if encoder_ref != "run:encoder" else
                 f"aligned({cfg.encoder}+{cfg.text_encoder})", "fingerprint": encoder.fingerprint(),
                 "dim": encoder.dim, "n_items": len(catalog), "backend": cfg.backend}
        make_index(cfg.backend, vectors, catalog.ids, **cfg.index_params).save(tmp)
        catalog.save(tmp / "catalog.parquet")
        write_json(tmp / "import_report.json", catalog.report.to_dict())
        write_json(tmp / "index.json", info)
    return SearchIndex(out, encoder=encoder)


def align_encoders(image_encoder: Encoder, text_encoder: Encoder, catalog: Catalog, out: Path,
                   cfg: BuildConfig, progress: bool = True, name: str | None = None) -> tuple[Encoder, dict[str, Any]]:
    """Train the two-tower projection on the catalog's (name, photo) pairs and save it in `out`.
    `name`: the encoder's `run:` name when `out` is only where it is built (default `run:<out>`).

    Trained heads are cached by their inputs (search/alignment_cache.py): a rebuild with the same
    encoders, catalog content and config reuses them instead of training again.
    """
    from fashionlens.encoders.aligned import AlignedEncoder
    from fashionlens.search.alignment_cache import alignment_key, entry_dir, load_entry, store_entry
    from fashionlens.train.align import train_alignment

    cols = [c for c in (cfg.label_column, cfg.colour_column) if c and c in catalog.df.columns]
    labels = catalog.df[cols].astype(str).to_numpy() if cols else None
    entry = entry_dir(cfg.cache_dir, alignment_key(image_encoder, text_encoder, catalog, cols, cfg.align))
    cached = load_entry(entry, image_encoder, text_encoder)
    if cached is not None:
        loaded, history = cached
        image_head, text_head = loaded.image_head, loaded.text_head
        history = {**history, "reused": str(entry)}
        if progress:
            print(f"alignment: reusing {entry} (same encoders, catalog and config)", file=sys.stderr)
    else:
        fi = embed_images(image_encoder, catalog, cfg.cache_dir, progress=progress)
        ft = embed_texts(text_encoder, catalog, cfg.cache_dir, progress=progress)
        res = train_alignment(fi, ft, labels, cfg.align, progress=progress)
        image_head, text_head = res.image_head, res.text_head
        history = {"best_epoch": res.best_epoch, "seconds": round(res.seconds, 2), "history": res.history,
                   "label_column": cfg.label_column if cfg.label_column in cols else None, "label_columns": cols}
    enc = AlignedEncoder(image_encoder, text_encoder, image_head, text_head,
                         {k: getattr(cfg.align, k) for k in ("dim", "hidden", "head", "dropout")},
                         name=name or f"run:{out}")
    enc.save(out)
    write_json(out / "metrics.json", history)
    if cached is None:
        store_entry(entry, out)
        if progress and entry is not None:
            print(f"alignment: trained in {res.seconds:.0f} s, cached in {entry}", file=sys.stderr)
    return enc, history


class SearchIndex:
    """An index directory: catalog snapshot + vectors + the encoder that made them."""

    @staticmethod
    def check(folder: str | Path) -> Path:
        """The folder's index.json once the folder matches its manifest (an interrupted rebuild is
        finished first); FolderError naming a damaged file, FileNotFoundError for no index."""
        return require_file(check_dir(folder), "index.json", "a fashionlens index",
                            "; build one with `fashionlens index`")

    def __init__(self, folder: str | Path, encoder: Encoder | None = None):
        self.folder = Path(folder)
        self.info = read_json(self.check(self.folder))
        self.catalog = Catalog.load(self.folder / "catalog.parquet")
        self.index = open_index(self.folder)
        self._check_rows()
        self._encoder = encoder
        self._lower: dict[str, np.ndarray] = {}

    def _check_rows(self) -> None:
        """Catalog rows mirror index rows and index.json agrees: files of different builds are refused."""
        n_rows, n_cat = len(self.index.ids), len(self.catalog)
        problem = None
        if n_cat != n_rows:
            problem = f"catalog.parquet has {n_cat} rows but the index has {n_rows} (ids.npy / vectors.npy)"
        elif not np.array_equal(self.catalog.df["id"].to_numpy(dtype=str), self.index.ids):
            problem = "catalog.parquet and the index list different item ids (ids.npy)"
        elif self.info.get("n_items", len(self.index)) != len(self.index):
            problem = f"index.json says {self.info['n_items']} items but the index holds {len(self.index)}"
        elif self.info.get("dim", self.index.dim) != self.index.dim:
            problem = f"index.json says dim {self.info['dim']} but vectors.npy has dim {self.index.dim}"
        if problem:
            raise FolderError(f"{self.folder}: {problem}: its files come from different builds; "
                              "rebuild it with `fashionlens index`")

    @property
    def encoder(self) -> Encoder:
        """The index's own encoder, loaded on first use."""
        if self._encoder is None:
            from fashionlens.encoders.registry import create_from_config

            self._encoder = create_from_config(self.info.get("encoder"), source=self.folder / "index.json",
                                               field="encoder")
        return self._encoder

    def check_encoder(self, name: str | None) -> None:
        """A query encoder other than the index's gives a clear error (the spaces differ)."""
        from fashionlens.encoders.registry import resolve_ref

        recorded = str(self.info.get("encoder"))
        if name and name not in (recorded, resolve_ref(recorded, self.folder), self.info.get("encoder_name")):
            raise InvalidInputError(
                f"index {self.folder} was built with encoder '{self.info.get('encoder_name')}', "
                f"not '{name}': its vectors live in another space. Rebuild with --encoder {name} or drop --encoder."
            )

    # ---- queries ----------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Text → image: the k photos that best match `query`, best first."""
        if not query.strip():
            raise InvalidInputError("empty query")
        q = self.encoder.encode_texts([query])
        return self._results(q, k, filters)[0]

    def similar(self, item_id: str | None = None, image: Any = None, k: int = 10,
                filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Image → image: items that look like catalog item `item_id` (itself excluded) or a photo."""
        if (item_id is None) == (image is None):
            raise InvalidInputError("give exactly one of an item id or an image")
        if item_id is not None:
            q = self.index.vectors[self.index.position(item_id)][None]
            return self._results(q, k, filters, exclude=[str(item_id)])[0]
        return self._results(self.encoder.encode_images([image]), k, filters)[0]

    def search_vectors(self, queries: np.ndarray, k: int = 10, filters: dict[str, str] | None = None):
        """Raw top-k (scores, row positions) for many query vectors at once."""
        return self.index.search(queries, k, self.filter_mask(filters))

    def filter_mask(self, filters: dict[str, str] | None) -> np.ndarray | None:
        """Rows whose columns equal the given values (case-insensitive); None = no filter."""
        if not filters:
            return None
        df = self.catalog.df
        mask = np.ones(len(df), dtype=bool)
        for col, val in filters.items():
            if col not in df.columns or col in ("image",):
                cols = ", ".join(c for c in df.columns if c != "image")
                raise NotFoundError(f"unknown filter column '{col}'; columns: {cols}")
            if col not in self._lower:
                self._lower[col] = df[col].astype(str).str.lower().to_numpy()
            mask &= self._lower[col] == str(val).lower()
        return mask

    def _results(self, q: np.ndarray, k: int, filters, exclude=None) -> list[list[dict[str, Any]]]:
        self._check_dim(q)
        scores, idx = self.index.search(q, k, self.filter_mask(filters), exclude=exclude)
        df = self.catalog.df
        out = []
        for srow, irow in zip(scores, idx):
            hits = []
            for s, i in zip(srow, irow):
                if i < 0:
                    break
                r = df.iloc[int(i)].to_dict()
                hits.append({"id": r.pop("id"), "score": float(s), "text": r.pop("text"), "image": r.pop("image"), **r})
            out.append(hits)
        return out

    def _check_dim(self, q: np.ndarray) -> None:
        if q.shape[1] != self.index.dim:
            raise InvalidInputError(f"query vectors have dim {q.shape[1]} but the index has {self.index.dim}: built with another encoder")

    # ---- maintenance ------------------------------------------------------------------------
    def add(self, catalog: Catalog, cache_dir: str | None = str(DEFAULT_CACHE), progress: bool = False) -> int:
        """Embed and add new (or changed) items without rebuilding; returns how many (photos that
        fail to decode are reported and not added)."""
        import pandas as pd

        catalog, vec = embed_catalog_images(self.encoder, catalog, cache_dir, progress=progress)
        self.index.add(vec, catalog.ids)
        old = self.catalog.df[~self.catalog.df["id"].isin(set(catalog.ids))]
        self._sync(pd.concat([old, catalog.df], ignore_index=True))
        return len(catalog)

    def remove(self, ids: list[str]) -> int:
        """Drop items by id without rebuilding; returns how many were present."""
        n = self.index.remove(ids)
        self._sync(self.catalog.df)
        return n

    def _sync(self, df) -> None:
        # catalog rows must mirror index rows one to one
        self.index.compact()
        df = df.drop_duplicates("id", keep="last").set_index("id").loc[self.index.ids].reset_index()
        self.catalog = Catalog(df, self.catalog.root, self.catalog.report)
        self._lower.clear()

    def save(self) -> None:
        """Write the updated index as a new folder swapped in for the old one (`atomic_dir`)."""
        self.info = {**self.info, "n_items": len(self.index)}
        with atomic_dir(self.folder, marks=INDEX_MARKS, carry=("encoder", "import_report.json")) as tmp:
            self.index.save(tmp)
            self.catalog.save(tmp / "catalog.parquet")
            write_json(tmp / "index.json", self.info)
        self.index = open_index(self.folder)  # the files just swapped in (a Lance table lived in the temp)
