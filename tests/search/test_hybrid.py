"""Hybrid search on a stand-in index whose photo side knows colour but not type (tests/search/stand_in.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.search.hybrid import FusionConfig
from fashionlens.search.index import SearchIndex
from tests.search.stand_in import build, colour_catalog


@pytest.fixture()
def idx(tmp_path):
    return build(tmp_path)


def _labels(hits):
    return [(h["baseColour"], h["articleType"]) for h in hits]


def test_facet_words_boost_without_filtering(idx):
    hits = idx.search("red floral summer dress", k=24)
    assert len(hits) == 24  # a boost, never a filter: every item is still ranked
    assert _labels(hits[:2]) == [("Red", "Dresses")] * 2
    assert hits[0]["why"]["facets"] == {"baseColour": "Red", "articleType": "Dresses"}
    assert {"red", "dress"} <= set(hits[0]["why"]["terms"])
    # the unmatched word still searches: among items that are neither red nor dresses, floral ones lead
    rest = [h for h in hits if h["baseColour"] != "Red" and h["articleType"] != "Dresses"]
    floral = [i for i, h in enumerate(rest) if "Floral" in h["text"]]
    assert floral and max(floral) < min(i for i, h in enumerate(rest) if "Floral" not in h["text"])
    # the facet term lifts dresses of other colours above other non-red items; plain fusion does not
    def dresses_lead(hits):
        kinds = [h["articleType"] for h in hits if h["baseColour"] != "Red"]
        return kinds[: kinds.count("Dresses")] == ["Dresses"] * kinds.count("Dresses")

    plain = SearchIndex(idx.folder, fusion=FusionConfig(facet_weight=0.0)).search("red floral summer dress", k=24)
    assert dresses_lead(hits) and not dresses_lead(plain)


def test_modes_differ_and_unknown_mode_is_refused(idx):
    vec = idx.search("red dress", k=6, mode="vector")
    assert all(h["baseColour"] == "Red" for h in vec) and vec[0]["why"] == {
        "mode": "vector", "terms": [], "vector": pytest.approx(vec[0]["score"], abs=1e-4), "vector_rank": 0}
    kw = idx.search("floral", k=24, mode="keyword")
    assert kw and all("Floral" in h["text"] for h in kw)  # keyword mode: only word matches
    assert idx.resolve_mode(None) == ("hybrid", None)
    with pytest.raises(ValueError, match="unknown search mode 'fuzzy'; choose one of: hybrid, vector, keyword"):
        idx.search("red", mode="fuzzy")


def test_synonyms_and_compounds_reach_the_same_items(idx):
    want = {h["id"] for h in idx.search("tshirts", k=8, mode="keyword")}
    assert len(want) == 8 and all(h["articleType"] == "Tshirts" for h in idx.search("tshirts", k=8, mode="keyword"))
    for q in ("t-shirt", "t shirt", "tee", "tees"):
        assert {h["id"] for h in idx.search(q, k=8, mode="keyword")} == want, q


def test_batch_equals_singles_in_every_mode(idx, monkeypatch):
    queries = ["red floral summer dress", "blue tee", "black sneakers", "green"]
    calls = []
    encode = idx.encoder.encode_texts
    monkeypatch.setattr(idx.encoder, "encode_texts", lambda texts: calls.append(len(texts)) or encode(texts))
    for mode in ("hybrid", "vector", "keyword"):
        for filters in (None, {"articleType": "Shoes"}):
            calls.clear()
            batch = idx.search_many(queries, k=5, filters=filters, mode=mode)
            assert calls == ([] if mode == "keyword" else [len(queries)])  # one encoder call for all
            assert batch == [idx.search(q, k=5, filters=filters, mode=mode) for q in queries]
    with pytest.raises(ValueError, match="empty query \\(number 2\\)"):
        idx.search_many(["red", " "])


def test_keyword_side_persists_and_reloads(idx):
    assert (idx.folder / "keywords").is_dir()
    again = SearchIndex(idx.folder)
    for mode in ("hybrid", "keyword"):
        assert again.search("blue floral dress", k=10, mode=mode) == idx.search("blue floral dress", k=10, mode=mode)


def test_add_and_remove_keep_both_sides_in_step(idx, tmp_path):
    from fashionlens.catalog.core import Catalog

    extra = colour_catalog(tmp_path / "more").df.iloc[:2].copy()
    extra["id"] = ["z1", "z2"]
    extra["text"] = ["Acme Women Red Zebra Dress", "Acme Women Blue Zebra Sneakers"]
    idx.add(Catalog(extra, tmp_path / "more"), cache_dir=None)
    assert [h["id"] for h in idx.search("zebra", k=5, mode="keyword")] in (["z1", "z2"], ["z2", "z1"])
    assert {h["id"] for h in idx.search("zebra", k=2)} == {"z1", "z2"}  # hybrid: both sides know them
    idx.remove(["z1", "0"])
    for mode in ("hybrid", "vector", "keyword"):
        ids = {h["id"] for h in idx.search("red zebra dress", k=30, mode=mode)}
        assert not ids & {"z1", "0"} and (mode == "vector" or "z2" in ids)
    on_disk = SearchIndex(idx.folder)
    assert "z2" not in {h["id"] for h in on_disk.search("zebra", k=5, mode="keyword")}  # not saved yet
    idx.save()
    again = SearchIndex(idx.folder)
    assert [h["id"] for h in again.search("zebra", k=5, mode="keyword")] == ["z2"]
    assert len(again.keywords) == len(again.index) == 24
    assert list(again.catalog.ids) == list(again.index.ids)


def test_keyword_hits_name_their_own_rows_after_edits_and_under_filters(idx):
    """Keyword rows map to index positions once per version of both sides: an edit that shifts the
    positions must not leave hits pointing at other items."""
    def floral(hits):
        return all("floral" in h["text"].lower() for h in hits) and len(hits) > 0

    assert floral(idx.search("floral", k=24, mode="keyword"))  # the map is built here
    first = idx.search("floral", k=1, mode="keyword")[0]["id"]
    idx.remove([idx.catalog.ids[0], first])  # every later position moves up
    hits = idx.search("floral", k=24, mode="keyword")
    assert floral(hits) and first not in {h["id"] for h in hits}
    from fashionlens.index.keyword import KeywordIndex

    idx._keywords = KeywordIndex.from_catalog(idx.catalog.df.sample(frac=1, random_state=0))  # rows in another order
    shuffled = idx.search("floral", k=24, mode="keyword")
    assert floral(shuffled) and {h["id"] for h in shuffled} == {h["id"] for h in hits}  # ties may reorder
    colour = hits[-1]["baseColour"]
    same = idx.search("floral", k=24, mode="keyword", filters={"baseColour": colour})
    assert floral(same) and all(h["baseColour"] == colour for h in same)
    assert {h["id"] for h in same} == {h["id"] for h in hits if h["baseColour"] == colour}


def test_an_index_with_an_old_lance_keyword_folder_searches_the_same(idx):
    from tests.index.test_keyword import write_lance_folder

    want = {m: idx.search("blue floral dress", k=8, mode=m) for m in ("hybrid", "keyword")}
    from fashionlens.search.index import INDEX_MARKS
    from fashionlens.utils import MANIFEST, atomic_dir

    carry = tuple(p.name for p in idx.folder.iterdir() if p.name not in ("keywords", MANIFEST))
    with atomic_dir(idx.folder, marks=INDEX_MARKS, carry=carry) as tmp:  # the folder as that build wrote it
        write_lance_folder(idx.catalog.df, tmp, deleted=None)
    old = SearchIndex(idx.folder)
    assert {m: old.search("blue floral dress", k=8, mode=m) for m in want} == want
    old.save()  # written in the current format with the vectors
    assert (idx.folder / "keywords" / "docs.parquet").is_file() and not (idx.folder / "keywords" / "docs.lance").exists()
    assert SearchIndex(idx.folder).search("blue floral dress", k=8, mode="keyword") == want["keyword"]


def test_index_without_texts_falls_back_to_vector_with_a_note(tmp_path):
    idx = build(tmp_path, with_texts=False)
    assert not (idx.folder / "keywords").exists() and idx.keywords is None
    mode, note = idx.resolve_mode("hybrid")
    assert mode == "vector" and "needs item names" in note and "photo only" in note
    assert idx.resolve_mode(None)[0] == "vector" and "photo only" in idx.resolve_mode(None)[1]
    hits = idx.search("red dress", k=4, mode="hybrid")
    assert hits == idx.search("red dress", k=4, mode="vector") and hits[0]["why"]["mode"] == "vector"


def test_index_saved_before_keywords_existed_builds_them_in_memory(idx):
    import shutil

    want = idx.search("blue floral dress", k=5)
    shutil.rmtree(idx.folder / "keywords")
    (idx.folder / "manifest.json").unlink()  # a folder written before keywords (and manifests) existed
    old = SearchIndex(idx.folder)
    assert old.search("blue floral dress", k=5) == want
    assert not (idx.folder / "keywords").exists()  # nothing written until save()
    old.save()
    assert (idx.folder / "keywords").is_dir()


def test_rank_scores_are_sorted_and_match_hits(idx):
    vecs = idx.encoder.encode_texts(["red dress"])
    (pos, scores, whys), = idx.rank(["red dress"], vecs, 5, None, "hybrid")
    assert np.all(np.diff(scores) <= 0) and len(pos) == len(whys) == 5
    assert [h["id"] for h in idx.search("red dress", k=5)] == [idx.catalog.ids[p] for p in pos]


def test_a_typed_product_name_finds_every_item_of_that_name_first(idx):
    hits = idx.search("acme women blue floral dress", k=3)
    assert hits[0]["text"] == "Acme Women Blue Floral Dress" and hits[0]["why"]["name"] is True
    assert "name" not in hits[1]["why"]
    twins = idx.search("Acme Women Red Dress", k=3)  # names repeat: both items of that name lead
    assert [h["text"] for h in twins[:2]] == ["Acme Women Red Dress"] * 2 and twins[2]["text"] != "Acme Women Red Dress"


def test_fusion_ranks_each_candidate_by_its_place_in_each_list():
    from fashionlens.search.hybrid import fuse

    vec = np.array([7, 3, 9, -1, -1])  # -1: padding of a filtered search
    kw = np.array([3, 12, 7])
    pos, score, ranks = fuse(vec, kw, None, 10, FusionConfig())
    want = {7: (0, 2), 3: (1, 0), 9: (2, -1), 12: (-1, 1)}
    assert sorted(pos.tolist()) == [3, 7, 9, 12]
    assert [(int(v), int(k)) for v, k in zip(ranks["vector"], ranks["keyword"], strict=True)] == [want[int(p)] for p in pos]
    assert pos[:2].tolist() == [3, 7] and list(score) == sorted(score, reverse=True)  # in both lists: first
    empty = fuse(np.array([-1, -1]), np.array([], dtype=np.int64), None, 5, FusionConfig())
    assert len(empty[0]) == 0


def test_facet_hits_name_rows_that_carry_the_value():
    import pandas as pd

    from fashionlens.index.keyword import Analyzer
    from fashionlens.search.query import FacetMatch, Facets

    df = pd.DataFrame({"id": list("abcd"), "text": ["x"] * 4, "baseColour": ["Red", "Navy Blue", "red", None],
                       "articleType": ["Tshirts", "Tshirts", "Dresses", "Dresses"]})
    f = Facets(df, Analyzer())
    m = f.match("navy blue dresses")
    assert [x.phrase for x in m] == ["navy blue", "dress"]
    got = f.satisfied(m + [FacetMatch("pink", (("baseColour", "Pink"),))], np.array([3, 1, 2, 0]))
    assert got.tolist() == [[False, True, False], [True, False, False], [False, True, False], [False, False, False]]
    assert f.satisfied([FacetMatch("red", (("baseColour", "RED"),))], np.array([0, 2, 1]))[:, 0].tolist() == [True, True, False]
