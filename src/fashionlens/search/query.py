"""Query understanding against the catalog's own facets: which words of a query name a label value.

"red floral summer dress" -> baseColour=Red, articleType=Dresses (and season=Summer where the catalog
has that column); "floral" names nothing and is left to the text and photo sides. Matches become soft
boosts in hybrid ranking (search/hybrid.py), never filters. Facets are the catalog's label columns
plus, when the catalog lacks them, a gender and a brand read from product names ("Nike Men ...").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from fashionlens.index.keyword import Analyzer, label_columns, light_stem

GENDER_WORDS = {"men": "Men", "man": "Men", "mens": "Men", "women": "Women", "woman": "Women", "womens": "Women",
                "boys": "Boys", "boy": "Boys", "girls": "Girls", "girl": "Girls", "unisex": "Unisex"}
MIN_BRAND_ITEMS = 3  # a name prefix seen on fewer items is not taken for a brand
MAX_PHRASE = 4  # longest facet value, in words, looked for in a query


@dataclass(frozen=True)
class FacetMatch:
    """Query words that name one label value (or several, e.g. articleType and subCategory Watches)."""

    phrase: str
    values: tuple[tuple[str, str], ...]  # (column, value) pairs


def derived_facets(df: Any) -> dict[str, list[str]]:
    """gender and brand read from names (`<Brand> <Men|Women|...> ...`), for catalogs without those columns."""
    out: dict[str, list[str]] = {}
    cols = {c.lower() for c in df.columns}
    names = df["text"].fillna("").astype(str).tolist()
    genders, brands = [], []
    for name in names:
        words = name.split()
        at = next((i for i, w in enumerate(words) if w.lower().strip("'s") in GENDER_WORDS), None)
        genders.append(GENDER_WORDS[words[at].lower().strip("'s")] if at is not None else "")
        brands.append(" ".join(words[:at]) if at else "")
    if "gender" not in cols and any(genders):
        out["gender"] = genders
    if "brand" not in cols:
        counts = Counter(b for b in brands if b)
        kept = [b if counts[b] >= MIN_BRAND_ITEMS else "" for b in brands]
        if any(kept):
            out["brand"] = kept
    return out


class Facets:
    """Label values of an index's rows, and a phrase table to find them in queries."""

    def __init__(self, df: Any, analyzer: Analyzer):
        self.analyzer = analyzer
        cols: dict[str, list[str]] = {c: df[c].fillna("").astype(str).tolist() for c in label_columns(df)}
        cols |= derived_facets(df)
        # per column: each row's value as an integer code (comparing the codes of the ~400 fused candidates
        # is cheaper than comparing their strings), and the code of each lower-cased value
        self._codes: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        for c, vals in cols.items():
            names, codes = np.unique(np.asarray([v.lower() for v in vals], dtype=object), return_inverse=True)
            self._codes[c] = ({v: i for i, v in enumerate(names)}, codes.astype(np.int32))
        self._phrases: dict[tuple[str, ...], set[tuple[str, str]]] = defaultdict(set)
        for col, vals in cols.items():
            for v in set(vals):
                words = tuple(analyzer.words(v))
                if v and 0 < len(words) <= MAX_PHRASE and len("".join(words)) > 1:
                    self._phrases[words].add((col, v))
                    if col == "gender":  # "men" and "man", "women" and "woman" name the same facet
                        for w, g in GENDER_WORDS.items():
                            if g == v:
                                self._phrases[(light_stem(w),)].add((col, v))

    def match(self, query: str) -> list[FacetMatch]:
        """Facet values named in the query, longest phrase first, left to right (no overlaps)."""
        words = self.analyzer.words(query)
        out, i = [], 0
        while i < len(words):
            for n in range(min(MAX_PHRASE, len(words) - i), 0, -1):
                hit = self._phrases.get(tuple(words[i : i + n]))
                if hit:
                    out.append(FacetMatch(" ".join(words[i : i + n]), tuple(sorted(hit))))
                    i += n
                    break
            else:
                i += 1
        return out

    def satisfied(self, matches: list[FacetMatch], rows: np.ndarray) -> np.ndarray:
        """(len(rows), len(matches)) bool: does row r carry (one of) the value(s) of match m."""
        out = np.zeros((len(rows), len(matches)), dtype=bool)
        for j, m in enumerate(matches):
            for col, val in m.values:
                code_of, codes = self._codes[col]
                out[:, j] |= codes[rows] == code_of.get(val.lower(), -1)
        return out
