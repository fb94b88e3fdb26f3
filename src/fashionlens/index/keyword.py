"""The keyword side of hybrid search: BM25 over names, descriptions and label values (bm25s).

`bm25s` (sparse scipy score matrices, one per field) does the scoring, with Snowball English stemming
(PyStemmer); this module adds what the catalog implies before the stemmer sees a word: compounds the
catalog writes both hyphenated and joined ("T-Shirt" / "Tshirts" -> "tshirt", also for "t shirt"), a
few shop synonyms ("tee" -> "tshirt"), lower case and accent folding. The same analyzer runs on
documents and on queries, and is saved with the index in `keywords/` inside the index folder: the
analyzed documents (`docs.parquet`, what add/remove edit) and each field's BM25 matrix (numpy arrays
+ JSON, loaded without pickle). Why bm25s and not LanceDB full text or SQLite FTS5: docs/search.md
(measured).

Edits (add/remove) change the documents in memory and rebuild the matrices before the next search
(a few seconds at 40k items); the folder on disk changes only at `save`, with the vectors. A folder
written by the earlier LanceDB engine (`keywords/docs.lance`) is read and converted in memory; the
next save writes the new format.
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.utils import FolderError, read_json, write_json

KEYWORD_DIR = "keywords"
ENGINE = "bm25s"
LANCE_TABLE = "docs"  # the earlier engine's table, read to convert old folders
FIELDS = ("name", "description", "labels")
BOOSTS = {"name": 1.0, "description": 0.5, "labels": 1.0}
K1, B = 1.2, 0.75  # BM25 parameters of Lucene / tantivy (the engine before)
DESCRIPTION_COLUMNS = ("description", "detail_desc")  # H&M articles.csv calls it detail_desc
MAX_LABEL_VALUES = 500  # columns with more distinct values are codes or free text, not labels
# Shop words that name a catalog word without sharing its letters
SYNONYMS = {"tee": "tshirt", "tees": "tshirts"}
WORD = re.compile(r"[^\W_]+")  # letters and digits of any script


@functools.lru_cache(maxsize=1 << 16)  # ~150 calls per search request ("why"), few distinct words
def light_stem(word: str) -> str:
    """Plural -> singular for matching query words to facet values and matched terms ("dresses",
    "watches", "shoes", "jeans" -> "dress", "watch", "shoe", "jean"); the engine stems on its own."""
    if len(word) <= 3 or word.endswith("ss"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("es") and (word[-3] in "sxz" or word[-4:-2] in ("ch", "sh")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def fold(text: str) -> str:
    """Lower case without accents ("Café" -> "cafe"), as the engine's ascii folding does."""
    text = str(text)
    if text.isascii():  # nothing to fold (most catalog text): 10x faster than the per-character pass
        return text.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


class Analyzer:
    """Lower-cases and rewrites compounds and synonyms the catalog implies (see module doc)."""

    def __init__(self, compounds: Sequence[str] = (), synonyms: dict[str, str] | None = None):
        self.compounds = sorted(set(compounds))  # hyphenated singular forms, e.g. "t-shirt"
        self.synonyms = dict(SYNONYMS if synonyms is None else synonyms)
        parts = sorted(self.compounds, key=len, reverse=True)
        # "t-shirt", "t shirt" and "t shirts" all become the joined word ("tshirt", "tshirts")
        self._compound = (re.compile(r"\b(" + "|".join(re.escape(p).replace(r"\-", r"[-\s]?") for p in parts) + r")(s?)\b")
                          if parts else None)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Analyzer:
        """Compounds are hyphenated pairs ("t-shirt") whose joined form ("tshirt(s)") is also a word here."""
        words: set[str] = set()
        hyphenated: set[str] = set()
        for t in texts:
            low = fold(t)
            words.update(WORD.findall(low))
            hyphenated.update(re.findall(r"\b[a-z]+-[a-z]+\b", low))
        joined = {light_stem(w) for w in words}
        return cls([light_stem(h) for h in hyphenated if light_stem(h.replace("-", "")) in joined])

    def __call__(self, text: str) -> str:
        low = fold(text)
        if self._compound is not None:
            low = self._compound.sub(lambda m: re.sub(r"[-\s]", "", m.group(1)) + m.group(2), low)
        return " ".join(self.synonyms.get(w, w) for w in WORD.findall(low))

    def words(self, text: str) -> list[str]:
        """Analyzed, light-stemmed words (what matched-term explanations compare)."""
        return [light_stem(w) for w in self(text).split()]

    def to_dict(self) -> dict[str, Any]:
        return {"compounds": self.compounds, "synonyms": self.synonyms}


def label_columns(df: Any) -> list[str]:
    """Attribute columns that hold labels (few distinct text values), e.g. articleType, baseColour."""
    out = []
    for col in df.columns:
        if col in ("id", "image", "text", *DESCRIPTION_COLUMNS) or df[col].dtype.kind in "fciub":
            continue
        vals = df[col].dropna().astype(str)
        if len(vals) and vals.nunique() <= MAX_LABEL_VALUES and not vals.str.fullmatch(r"[\d.\-]+").all():
            out.append(col)
    return out


def documents(df: Any) -> dict[str, list[str]]:
    """The searchable fields of catalog rows: name (text), description (when present), label values."""
    n = len(df)
    desc_col = next((c for c in DESCRIPTION_COLUMNS if c in df.columns), None)
    labels = label_columns(df)

    def col(c: str) -> list[str]:
        return df[c].fillna("").astype(str).tolist()

    lab = [" ".join(v for v in row if v and v != "nan") for row in zip(*(col(c) for c in labels))] if labels else [""] * n
    return {"name": col("text"), "description": col(desc_col) if desc_col else [""] * n, "labels": lab}


def has_texts(df: Any) -> bool:
    """Whether rows have any name or description to search (a photos-only catalog has not)."""
    docs = documents(df)
    return any(t.strip() for t in docs["name"]) or any(t.strip() for t in docs["description"])


class KeywordIndex:
    """BM25 over the catalog's words, keyed by item id; `search` returns (ids, scores) best first.
    Searches may run from several threads (the server runs them outside its model lock)."""

    def __init__(self, ids: Sequence[str], docs: dict[str, list[str]], analyzer: Analyzer, fields: Sequence[str],
                 matrices: dict[str, Any] | None = None):
        """`docs`: each field's analyzed text per item (row order of `ids`); `matrices`: prebuilt
        bm25s models per field (built here when None)."""
        self.analyzer, self.fields = analyzer, tuple(fields)
        self._ids, self._docs = [str(i) for i in ids], {f: list(docs[f]) for f in self.fields}
        self._lock = threading.Lock()  # one rebuild at a time; searches read one immutable snapshot
        self._stemmers = threading.local()  # a PyStemmer object is not safe to share between threads
        self._state = (np.asarray(self._ids, dtype=object), matrices) if matrices is not None else None

    @classmethod
    def from_catalog(cls, df: Any) -> KeywordIndex:
        """Build over catalog rows (a DataFrame with id, text and attribute columns)."""
        docs = documents(df)
        analyzer = Analyzer.from_texts([*docs["name"], *docs["labels"]])
        fields = [f for f in FIELDS if any(t.strip() for t in docs[f])]
        index = cls(df["id"].astype(str).tolist(), {f: [analyzer(t) for t in docs[f]] for f in fields}, analyzer, fields)
        index._snapshot()
        return index

    @classmethod
    def load(cls, folder: str | Path) -> KeywordIndex | None:
        """The keyword index saved in an index folder, or None when it has none."""
        root = Path(folder) / KEYWORD_DIR
        if not (root / "analyzer.json").is_file():
            return None
        meta = read_json(root / "analyzer.json")
        analyzer, fields = Analyzer(meta["compounds"], meta["synonyms"]), meta["fields"]
        if meta.get("engine") != ENGINE:  # written by the LanceDB engine: convert its analyzed documents
            ids, docs = _read_lance(root, fields)
            return cls(ids, docs, analyzer, fields)
        import bm25s
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(root / "docs.parquet")
            docs = {f: table.column(f).to_pylist() for f in fields}
            matrices = {f: bm25s.BM25.load(root / f, allow_pickle=False, show_progress=False) for f in fields}
        except (OSError, ValueError, KeyError) as e:  # a missing file or field, or an array that would need pickle
            raise FolderError(f"{root}: cannot read the keyword index ({e}); rebuild the index") from e
        if any(m.scores["num_docs"] != table.num_rows for m in matrices.values()):
            raise FolderError(f"{root}: the BM25 matrices do not match docs.parquet ({table.num_rows} rows): "
                             "the keyword index is damaged; rebuild the index")
        return cls(table.column("id").to_pylist(), docs, analyzer, fields, matrices)

    def __len__(self) -> int:
        return len(self._ids)

    # ---- queries ------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 100) -> tuple[list[str], np.ndarray]:
        """Item ids whose words best match `query` (BM25 per field, summed with the BOOSTS weights), with
        scores; ties in item order."""
        ids, rows, scores = self.search_rows(query, limit)
        return ids[rows].tolist(), scores

    def search_rows(self, query: str, limit: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`search` as (the item ids of this version of the index, hit rows into them, scores): a caller
        can map rows to its own positions once per version (the ids array is replaced by every edit)."""
        words = self._stem(self.analyzer(query).split())
        ids, matrices = self._snapshot()
        score = None
        for f in self.fields:
            tokens = matrices[f].get_tokens_ids(words)
            if tokens:
                s = matrices[f].get_scores_from_ids(tokens) * np.float32(BOOSTS[f])
                score = s if score is None else score + s
        if score is None:
            return ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        hit = np.flatnonzero(score > 0)
        if len(hit) > limit:  # the best `limit` (ties at the cut broken by row below)
            hit = hit[np.argpartition(-score[hit], limit - 1)[:limit]]
        hit = hit[np.lexsort((hit, -score[hit]))]
        return ids, hit, score[hit].astype(np.float32)

    def _stem(self, words: list[str]) -> list[str]:
        stemmer = getattr(self._stemmers, "s", None)
        if stemmer is None:
            import Stemmer

            stemmer = self._stemmers.s = Stemmer.Stemmer("english")
        return stemmer.stemWords(words)

    def _snapshot(self) -> tuple[np.ndarray, dict[str, Any]]:
        """(item ids, BM25 model per field) for the current documents, rebuilt after an edit."""
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    import bm25s

                    matrices = {}
                    for f in self.fields:
                        model = bm25s.BM25(k1=K1, b=B)
                        model.index([self._stem(t.split()) for t in self._docs[f]], show_progress=False)
                        matrices[f] = model
                    self._state = (np.asarray(self._ids, dtype=object), matrices)
                state = self._state
        return state

    # ---- maintenance --------------------------------------------------------------------------
    def add(self, df: Any) -> None:
        """Add catalog rows (an id already present is replaced)."""
        ids = df["id"].astype(str).tolist()
        self.remove(ids)
        docs = documents(df)
        self._ids += ids
        for f in self.fields:
            self._docs[f] += [self.analyzer(t) for t in docs[f]]
        self._state = None

    def remove(self, ids: Sequence[str]) -> None:
        drop = {str(i) for i in ids}
        keep = [j for j, i in enumerate(self._ids) if i not in drop]
        if len(keep) == len(self._ids):
            return
        self._ids = [self._ids[j] for j in keep]
        self._docs = {f: [d[j] for j in keep] for f, d in self._docs.items()}
        self._state = None

    def save(self, folder: str | Path) -> None:
        """Make `folder/keywords` hold this index: written beside, then swapped in by rename."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        _, matrices = self._snapshot()
        target = Path(folder) / KEYWORD_DIR
        tmp, old = target.with_name(f".{KEYWORD_DIR}.tmp"), target.with_name(f".{KEYWORD_DIR}.old")
        for p in (tmp, old):
            shutil.rmtree(p, ignore_errors=True)
        tmp.mkdir(parents=True)
        cols = {"id": pa.array(self._ids, type=pa.string())} | {f: pa.array(self._docs[f], type=pa.string()) for f in self.fields}
        pq.write_table(pa.table(cols), tmp / "docs.parquet")
        for f in self.fields:
            matrices[f].save(tmp / f, allow_pickle=False, show_progress=False)
        write_json(tmp / "analyzer.json", {**self.analyzer.to_dict(), "fields": list(self.fields), "engine": ENGINE})
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)


def _read_lance(root: Path, fields: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Item ids and analyzed fields of a keyword table the LanceDB engine wrote (its live rows)."""
    import lancedb

    table = lancedb.connect(str(root)).open_table(LANCE_TABLE).to_arrow()
    return table.column("id").to_pylist(), {f: table.column(f).to_pylist() for f in fields}


def save_keywords(df: Any, folder: str | Path) -> None:
    """build_index's hook: the keyword side of a catalog with texts, saved in the index folder."""
    if has_texts(df):
        KeywordIndex.from_catalog(df).save(folder)
