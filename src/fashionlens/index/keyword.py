"""The keyword side of hybrid search: BM25 over names, descriptions and label values (LanceDB full text).

Lance's native full-text index (BM25, English stemming, ascii folding) does the scoring; this module
adds what the catalog implies before the engine's tokenizer sees a word: compounds the catalog writes
both hyphenated and joined ("T-Shirt" / "Tshirts" -> "tshirt", also for "t shirt") and a few shop
synonyms ("tee" -> "tshirt"). The same analyzer runs on documents and on queries, and is saved with
the table in `keywords/` inside the index folder. Why Lance and not SQLite FTS5 or bm25s:
docs/search.md (measured).

A loaded index reads its folder as is; the first add/remove copies it to a scratch folder, and
`save` swaps the edited copy in, so the folder on disk changes only when the vectors are saved too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.utils import read_json, write_json

KEYWORD_DIR = "keywords"
TABLE = "docs"
FIELDS = ("name", "description", "labels")
BOOSTS = {"name": 1.0, "description": 0.5, "labels": 1.0}
DESCRIPTION_COLUMNS = ("description", "detail_desc")  # H&M articles.csv calls it detail_desc
MAX_LABEL_VALUES = 500  # columns with more distinct values are codes or free text, not labels
# Shop words that name a catalog word without sharing its letters
SYNONYMS = {"tee": "tshirt", "tees": "tshirts"}
WORD = re.compile(r"[^\W_]+")  # letters and digits of any script


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
    """BM25 over the catalog's words, keyed by item id; `search` returns (ids, scores) best first."""

    def __init__(self, uri: Path, analyzer: Analyzer, fields: Sequence[str], scratch: bool):
        import lancedb

        self.uri, self.analyzer, self.fields, self._scratch = Path(uri), analyzer, tuple(fields), scratch
        self._tbl = lancedb.connect(str(self.uri)).open_table(TABLE)
        self._row_ids: dict[int, str] | None = None  # Lance _rowid -> item id (`_ids_of`)

    @classmethod
    def from_catalog(cls, df: Any) -> KeywordIndex:
        """Build over catalog rows (a DataFrame with id, text and attribute columns) in a scratch folder."""
        docs = documents(df)
        analyzer = Analyzer.from_texts([*docs["name"], *docs["labels"]])
        fields = [f for f in FIELDS if any(t.strip() for t in docs[f])]
        uri = Path(tempfile.mkdtemp(prefix="fashionlens-keywords-"))
        import lancedb
        from lancedb.index import FTS

        db = lancedb.connect(str(uri))
        db.create_table(TABLE, _arrow(df["id"].astype(str).tolist(), docs, fields, analyzer))
        tbl = db.open_table(TABLE)
        for f in fields:  # English stemming, no stop-word removal: "top", "men" are catalog words
            tbl.create_index(f, config=FTS(stem=True, remove_stop_words=False, ascii_folding=True))
        write_json(uri / "analyzer.json", {**analyzer.to_dict(), "fields": fields})
        return cls(uri, analyzer, fields, scratch=True)

    @classmethod
    def load(cls, folder: str | Path) -> KeywordIndex | None:
        """The keyword index saved in an index folder, or None when it has none."""
        root = Path(folder) / KEYWORD_DIR
        if not (root / "analyzer.json").is_file():
            return None
        meta = read_json(root / "analyzer.json")
        return cls(root, Analyzer(meta["compounds"], meta["synonyms"]), meta["fields"], scratch=False)

    def __len__(self) -> int:
        return self._tbl.count_rows()

    # ---- queries ------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 100) -> tuple[list[str], np.ndarray]:
        """Item ids whose words best match `query` (BM25, fields boosted by BOOSTS), with scores."""
        from lancedb.query import MultiMatchQuery

        text = self.analyzer(query)
        if not text or not self.fields:
            return [], np.zeros(0, dtype=np.float32)
        q = MultiMatchQuery(text, list(self.fields), boosts=[BOOSTS[f] for f in self.fields])
        inner = getattr(self._tbl, "_table", None)  # the sync table's own async handle (same version)
        if inner is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = self._tbl.search(q, query_type="fts").limit(limit).select(["id", "_score"]).to_arrow()
            return res.column("id").to_pylist(), res.column("_score").to_numpy().astype(np.float32)
        # lancedb's sync search() re-reads the schema three times per query: 14 -> 6 ms at 40k; row ids
        # instead of the id column spare a take of `limit` rows: 7.7 -> 6.5 ms CPU (docs/benchmarks.md)
        from lancedb.background_loop import LOOP

        res = LOOP.run(inner.query().nearest_to_text(q).select(["_score"]).with_row_id().limit(limit).to_arrow())
        return self._ids_of(res.column("_rowid").to_pylist()), res.column("_score").to_numpy().astype(np.float32)

    def _ids_of(self, row_ids: list[int]) -> list[str]:
        """Item ids of Lance row ids. Lance never gives a row address twice (fragment ids only grow), so
        an entry of the map is never wrong; a row id missing from it means rows were added or compacted
        since it was read: it is read again. Deleted rows are never hits, so their entries are harmless."""
        ids = self._row_ids
        if ids is None or any(r not in ids for r in row_ids):
            from lancedb.background_loop import LOOP

            t = LOOP.run(self._tbl._table.query().select(["id"]).with_row_id().to_arrow())
            ids = self._row_ids = dict(zip(t.column("_rowid").to_pylist(), t.column("id").to_pylist(), strict=True))
        return [ids[r] for r in row_ids if r in ids]

    # ---- maintenance --------------------------------------------------------------------------
    def add(self, df: Any) -> None:
        """Add catalog rows (an id already present is replaced)."""
        ids = df["id"].astype(str).tolist()
        self.remove(ids)
        self._tbl.add(_arrow(ids, documents(df), self.fields, self.analyzer))

    def remove(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        self._edit()
        quoted = ", ".join("'" + str(i).replace("'", "''") + "'" for i in ids)
        self._tbl.delete(f"id IN ({quoted})")

    def _edit(self) -> None:
        """Copy-on-write: edits go to a scratch copy until `save`."""
        if self._scratch:
            return
        import lancedb

        scratch = Path(tempfile.mkdtemp(prefix="fashionlens-keywords-"))
        shutil.copytree(self.uri, scratch, dirs_exist_ok=True)
        self.uri, self._scratch = scratch, True
        self._tbl = lancedb.connect(str(scratch)).open_table(TABLE)

    def save(self, folder: str | Path) -> None:
        """Make `folder/keywords` hold this index: written beside, then swapped in by rename."""
        target = Path(folder) / KEYWORD_DIR
        if not self._scratch and self.uri.resolve() == target.resolve():
            return
        import lancedb

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._tbl.optimize()  # fold the edits into the full-text index and drop old versions
        tmp, old = target.with_name(f".{KEYWORD_DIR}.tmp"), target.with_name(f".{KEYWORD_DIR}.old")
        for p in (tmp, old):
            shutil.rmtree(p, ignore_errors=True)
        shutil.copytree(self.uri, tmp)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.uri, ignore_errors=True)
        self.uri, self._scratch = target, False
        self._tbl = lancedb.connect(str(target)).open_table(TABLE)


def _arrow(ids: list[str], docs: dict[str, list[str]], fields: Sequence[str], analyzer: Analyzer):
    import pyarrow as pa

    cols = {"id": pa.array(ids, type=pa.string())}
    cols |= {f: pa.array([analyzer(t) for t in docs[f]], type=pa.string()) for f in fields}
    return pa.table(cols)


def save_keywords(df: Any, folder: str | Path) -> None:
    """build_index's hook: the keyword side of a catalog with texts, saved in the index folder."""
    if has_texts(df):
        KeywordIndex.from_catalog(df).save(folder)
