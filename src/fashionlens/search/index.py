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
from fashionlens.index.factory import make_index, open_index
from fashionlens.index.keyword import Analyzer, KeywordIndex, documents, has_texts, save_keywords
from fashionlens.manifest import check_overwrite, own_fields, read_manifest, write_manifest
from fashionlens.search.hybrid import MODES, FusionConfig, candidates, explain, fuse, matched_terms
from fashionlens.search.query import Facets
from fashionlens.train.config import AlignConfig
from fashionlens.utils import (
    FolderError,
    atomic_dir,
    write_json,
)

# Lite0 features with the garment's colour histogram fused in (docs/bench/retrieval_catalog.md)
DEFAULT_IMAGE_ENCODER = "efficientnet-lite0.colour"
DEFAULT_TEXT_ENCODER = "minilm-l6"
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
    info: dict[str, Any] = {"built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    check_overwrite(out, "index", INDEX_MARKS)
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
        save_keywords(catalog.df, tmp)  # the word side of hybrid search (none for a photos-only catalog)
        catalog.save(tmp / "catalog.parquet")
        write_json(tmp / "import_report.json", catalog.report.to_dict())
        write_manifest(tmp, "index", cfg.to_dict(), **info)
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
    def check(folder: str | Path) -> dict[str, Any]:
        """The folder's run manifest (index.json) once the folder matches its file listing (an
        interrupted rebuild is finished first); FolderError naming a damaged file or saying what
        else the folder is, FileNotFoundError for no index."""
        return read_manifest(folder, "index")

    def __init__(self, folder: str | Path, encoder: Encoder | None = None, fusion: FusionConfig | None = None):
        self.folder = Path(folder)
        self.info = self.check(self.folder)
        self.catalog = Catalog.load(self.folder / "catalog.parquet")
        self.index = open_index(self.folder)
        self.fusion = fusion or FusionConfig()
        self._check_rows()
        self._encoder = encoder
        self._lower: dict[str, np.ndarray] = {}
        self._keywords: KeywordIndex | None = None
        self._keywords_open = False
        self._facets: Facets | None = None
        self._has_texts: bool | None = None
        self._docs: list[str] | None = None  # per row: name + description + labels, for matched terms
        self._analyzed: np.ndarray | None = None  # per row: analyzed name, for exact-name queries

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

    # ---- the word side (loaded on first use) -------------------------------------------------
    @property
    def has_texts(self) -> bool:
        """Whether the items have names or descriptions (a photos-only catalog is searched by photo)."""
        if self._has_texts is None:
            self._has_texts = has_texts(self.catalog.df)
        return self._has_texts

    @property
    def keywords(self) -> KeywordIndex | None:
        """The keyword index saved with the index (built in memory for an index saved before it had one)."""
        if not self._keywords_open:
            self._keywords = KeywordIndex.load(self.folder)
            if self._keywords is None and self.has_texts:
                self._keywords = KeywordIndex.from_catalog(self.catalog.df)
            self._keywords_open = True
        return self._keywords

    @property
    def facets(self) -> Facets:
        """The label values a query can name (soft boosts in hybrid mode)."""
        if self._facets is None:
            kw = self.keywords
            self._facets = Facets(self.catalog.df, kw.analyzer if kw is not None else Analyzer())
        return self._facets

    def resolve_mode(self, mode: str | None = None) -> tuple[str, str | None]:
        """(mode used, a note for the user or None). Default: hybrid where items have texts, else vector."""
        if mode is not None and mode not in MODES:
            raise InvalidInputError(f"unknown search mode '{mode}'; choose one of: {', '.join(MODES)}")
        if self.has_texts:
            return mode or "hybrid", None
        asked = f"{mode} search needs item names or descriptions; " if mode in ("hybrid", "keyword") else ""
        return "vector", f"{asked}index {self.folder.name} has none, so it is searched by photo only (vector mode)"

    # ---- queries ----------------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: dict[str, str] | None = None,
               mode: str | None = None) -> list[dict[str, Any]]:
        """Text → items: the k best matches for `query`, best first, each with a "why".

        mode: "hybrid" (photos + words + facet boosts; default where items have texts), "vector"
        (photos only, the cold-start case and the default without texts) or "keyword" (words only).
        """
        return self.search_many([query], k, filters, mode)[0]

    def search_many(self, queries: list[str], k: int = 10, filters: dict[str, str] | None = None,
                    mode: str | None = None) -> list[list[dict[str, Any]]]:
        """`search` for many queries with one text-encoder call; same answers as one by one."""
        queries = list(queries)
        for i, q in enumerate(queries):
            if not str(q).strip():
                raise InvalidInputError("empty query" if len(queries) == 1 else f"empty query (number {i + 1})")
        mode, _ = self.resolve_mode(mode)
        mask = self.filter_mask(filters)  # before encoding: a bad filter costs no model call
        words = None
        if mode == "keyword":
            vecs = None
        elif mode == "hybrid" and self.keywords is not None:
            # the word side runs on a worker thread while the text tower encodes (both release the GIL)
            from concurrent.futures import ThreadPoolExecutor

            n_cand = max(self.fusion.candidates, k)
            with ThreadPoolExecutor(1) as pool:
                side = pool.submit(lambda: [self.keyword_side(q, n_cand, mask) for q in queries])
                vecs = self.encoder.encode_texts(queries)
                words = side.result()
        else:
            vecs = self.encoder.encode_texts(queries)
        return [self._hits(pos, sc, why) for pos, sc, why in self.rank(queries, vecs, k, mask, mode, words)]

    def rank(self, queries: list[str], vecs: np.ndarray | None, k: int, mask: np.ndarray | None = None,
             mode: str = "hybrid", words: list[tuple[np.ndarray, np.ndarray]] | None = None,
             side: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]]:
        """(row positions, scores, whys) per query, for queries already encoded (`vecs`, one row each;
        None in keyword mode). The vector side of all queries is one index scan. `words`: each query's
        keyword side when already fetched (`keyword_side`); `side`: the vector side when already
        searched (`vector_side`, at least k deep, or `fusion.candidates` outside vector mode)."""
        n_cand = k if mode == "vector" else max(self.fusion.candidates, k)
        if vecs is not None:
            vp = (side if side is not None else self.vector_side(vecs, n_cand, mask))[1][:, :n_cand]
        if mode == "vector":
            out = []
            for q, p in zip(vecs, vp):
                p = p[p >= 0]
                s = self.index.vectors[p] @ q  # the same arithmetic alone or in a batch (faiss and BLAS round apart)
                out.append((p, s, [{"mode": mode, "terms": [], "vector": round(float(x), 4), "vector_rank": r}
                                   for r, x in enumerate(s)]))
            return out
        out = []
        for i, q in enumerate(queries):
            kp, ks = words[i] if words is not None else self.keyword_side(q, n_cand, mask)
            if mode == "keyword":
                n = min(k, len(kp))
                pos, score, ranks = kp[:n], ks[:n], {"vector": np.full(n, -1), "keyword": np.arange(n)}
                matches, hits = [], None
            else:
                matches, cand = self.facets.match(q), candidates(vp[i], kp)
                sat = self.facets.satisfied(matches, cand)
                named = self._names()[cand] == self.keywords.analyzer(q) if self.keywords is not None else None
                pos, score, ranks = fuse(vp[i], kp, sat, k, self.fusion, named)
                hits = sat[ranks["order"]]
                ranks["named"] = named[ranks["order"]] if named is not None else None
            cos = self.index.vectors[pos] @ vecs[i] if vecs is not None and len(pos) else None
            out.append((pos, score, self._whys(q, mode, pos, matches, hits, cos, ranks)))
        return out

    def vector_side(self, vecs: np.ndarray, depth: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row positions) of the `depth` nearest rows per query vector: one index scan for all."""
        self._check_dim(vecs)
        return self.index.search(vecs, depth, mask)

    def keyword_side(self, query: str, limit: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row positions and BM25 scores of the keyword hits (alive, allowed by `mask`), best first.
        Safe to call from several threads (the server runs it outside its model lock)."""
        kw = self.keywords
        if kw is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if mask is not None:  # fetch enough that `limit` survive a selective filter (the photo side is pre-filtered)
            limit = min(len(mask), 20 * limit, int(limit * len(mask) / max(1, int(mask.sum()))))
        ids, scores = kw.search(query, limit)
        pos, keep = [], []
        for j, i in enumerate(ids):
            try:
                p = self.index.position(i)
            except KeyError:
                continue
            if mask is None or mask[p]:
                pos.append(p)
                keep.append(j)
        return np.asarray(pos, dtype=np.int64), scores[keep]

    def _names(self) -> np.ndarray:
        """Every row's name as the analyzer writes it (the query "is" an item's name when equal)."""
        if self._analyzed is None:
            self._analyzed = np.asarray([self.keywords.analyzer(t) for t in self.catalog.texts], dtype=object)
        return self._analyzed

    def _doc_words(self, row: int) -> set[str]:
        """The analyzed words of a row's name, description and labels (for "why": matched terms)."""
        if self._docs is None:
            self._docs = [" ".join(t) for t in zip(*documents(self.catalog.df).values())]
        return set(self.keywords.analyzer.words(self._docs[row]))

    def _whys(self, query: str, mode: str, pos: np.ndarray, matches, hits, cos, ranks) -> list[dict[str, Any]]:
        kw = self.keywords
        if kw is None or not len(pos):
            words: list[tuple[str, str]] = []
        else:
            typed = kw.analyzer(query).split()
            words = list(zip(typed, (kw.analyzer.words(t)[0] for t in typed)))
        out = []
        for j in range(len(pos)):
            terms = matched_terms(words, self._doc_words(int(pos[j]))) if words else []
            rv, rk = int(ranks["vector"][j]), int(ranks["keyword"][j])
            named = ranks.get("named")
            out.append(explain(mode, matches, hits[j] if hits is not None else None, terms,
                               None if cos is None else cos[j], rv if rv >= 0 else None, rk if rk >= 0 else None,
                               bool(named[j]) if named is not None else False))
        return out

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
        return [self._hits(irow[irow >= 0], srow[irow >= 0]) for srow, irow in zip(scores, idx)]

    def _hits(self, pos: np.ndarray, scores: np.ndarray, whys: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        hits = []
        for j, (s, i) in enumerate(zip(scores, pos)):
            r = self.catalog.df.iloc[int(i)].to_dict()
            hit = {"id": r.pop("id"), "score": float(s), "text": r.pop("text"), "image": r.pop("image"), **r}
            if whys is not None:
                hit["why"] = whys[j]
            hits.append(hit)
        return hits

    def _check_dim(self, q: np.ndarray) -> None:
        if q.shape[1] != self.index.dim:
            raise InvalidInputError(f"query vectors have dim {q.shape[1]} but the index has {self.index.dim}: built with another encoder")

    # ---- maintenance ------------------------------------------------------------------------
    def add(self, catalog: Catalog, cache_dir: str | None = str(DEFAULT_CACHE), progress: bool = False) -> int:
        """Embed and add new (or changed) items without rebuilding; returns how many (photos that
        fail to decode are reported and not added)."""
        import pandas as pd

        catalog, vec = embed_catalog_images(self.encoder, catalog, cache_dir, progress=progress)
        kw = self.keywords
        self.index.add(vec, catalog.ids)
        old = self.catalog.df[~self.catalog.df["id"].isin(set(catalog.ids))]
        self._sync(pd.concat([old, catalog.df], ignore_index=True))
        if kw is not None:
            kw.add(catalog.df)
        elif self.has_texts:  # the first items with names: the word side starts now
            self._keywords = KeywordIndex.from_catalog(self.catalog.df)
        return len(catalog)

    def remove(self, ids: list[str]) -> int:
        """Drop items by id without rebuilding; returns how many were present."""
        n = self.index.remove(ids)
        if self.keywords is not None:
            self.keywords.remove([str(i) for i in ids])
        self._sync(self.catalog.df)
        return n

    def _sync(self, df) -> None:
        # catalog rows must mirror index rows one to one
        self.index.compact()
        df = df.drop_duplicates("id", keep="last").set_index("id").loc[self.index.ids].reset_index()
        self.catalog = Catalog(df, self.catalog.root, self.catalog.report)
        self._lower.clear()
        self._facets, self._has_texts, self._docs, self._analyzed = None, None, None, None

    def save(self) -> None:
        """Write the updated index as a new folder swapped in for the old one (`atomic_dir`)."""
        self.info = {**self.info, "n_items": len(self.index)}
        # the keyword side comes along unchanged when it was never opened, else it is written anew
        carry = ("encoder", "import_report.json", *(() if self._keywords_open else ("keywords",)))
        with atomic_dir(self.folder, marks=INDEX_MARKS, carry=carry) as tmp:
            self.index.save(tmp)
            if self._keywords is not None:
                self._keywords.save(tmp)
            self.catalog.save(tmp / "catalog.parquet")
            write_manifest(tmp, "index", self.info["config"], **own_fields(self.info))
        self.index = open_index(self.folder)  # the files just swapped in (a Lance table lived in the temp)
        self._keywords, self._keywords_open = None, False  # likewise the keyword table
