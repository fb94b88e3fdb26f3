"""The keyword side on its own: analyzer, fields (incl. H&M descriptions), save/load, copy-on-write edits."""

from __future__ import annotations

import pandas as pd
import pytest

from fashionlens.index.keyword import (
    KEYWORD_DIR,
    Analyzer,
    KeywordIndex,
    documents,
    label_columns,
    light_stem,
)


def _frame(rows):
    return pd.DataFrame(rows, columns=["id", "image", "text", "articleType", "baseColour"])


@pytest.fixture()
def df():
    return _frame([["1", "", "Nike Men White T-Shirt", "Tshirts", "White"],
                   ["2", "", "Puma Women Red Dress", "Dresses", "Red"],
                   ["3", "", "Adidas Men Black Sneakers", "Casual Shoes", "Black"],
                   ["4", "", "Roadster Navy Blue Tshirt", "Tshirts", "Navy Blue"]])


def test_analyzer_joins_compounds_the_catalog_writes_both_ways():
    a = Analyzer.from_texts(["Nike White T-Shirt", "Tshirts", "Flip-Flop sandal"])
    assert a.compounds == ["t-shirt"]  # "flip-flop" is never written joined here: left alone
    assert {a(t) for t in ("T-Shirt", "t shirt", "tshirt", "TSHIRT", "tee")} == {"tshirt"}
    assert a("Navy t-shirts") == "navy tshirts" and a("flip-flops") == "flip flops" and a("Café") == "cafe"
    assert [light_stem(w) for w in ("dresses", "watches", "shoes", "jeans", "glasses", "tshirts")] == [
        "dress", "watch", "shoe", "jean", "glass", "tshirt"]


def test_fields_take_labels_and_a_description_column():
    hm = _frame([["a", "", "Strap top", "Vest top", "Black"]]).assign(detail_desc=["Jersey top with narrow shoulder straps."],
                                                                       product_code=["0108775"])
    docs = documents(hm)
    assert docs["description"] == ["Jersey top with narrow shoulder straps."]
    assert label_columns(hm) == ["articleType", "baseColour"]  # codes and free text are not labels
    kw = KeywordIndex.from_catalog(hm)
    assert kw.search("shoulder straps")[0] == ["a"]  # found by its description only


def test_search_ranks_by_words_and_stems(df):
    kw = KeywordIndex.from_catalog(df)
    ids, scores = kw.search("navy blue tee")
    assert ids[0] == "4" and list(scores) == sorted(scores, reverse=True)
    assert kw.search("dresses")[0] == ["2"]  # stemmed: dresses ~ dress
    assert set(kw.search("t-shirts")[0]) == {"1", "4"}
    assert kw.search("!!!")[0] == []  # nothing searchable: no hits, no error


def test_saves_reloads_and_edits_copy_on_write(df, tmp_path):
    kw = KeywordIndex.from_catalog(df)
    kw.save(tmp_path)
    assert (tmp_path / KEYWORD_DIR / "analyzer.json").is_file() and not kw.uri.name.startswith("fashionlens-")
    again = KeywordIndex.load(tmp_path)
    (ids, scores), (ids0, scores0) = again.search("red dress"), kw.search("red dress")
    assert ids == ids0 and scores == pytest.approx(scores0) and len(again) == 4
    again.add(_frame([["5", "", "Zara Women Red Skirt", "Skirts", "Red"], ["2", "", "Puma Women Blue Dress", "Dresses", "Blue"]]))
    again.remove(["1"])
    assert len(again) == 4 and again.search("skirt")[0] == ["5"] and again.search("red")[0] == ["5"]
    assert KeywordIndex.load(tmp_path).search("skirt")[0] == []  # the folder is unchanged until save
    again.save(tmp_path)
    fresh = KeywordIndex.load(tmp_path)
    assert fresh.search("skirt")[0] == ["5"] and "1" not in fresh.search("nike")[0] and len(fresh) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEYWORD_DIR]  # no temp folders left behind
    assert KeywordIndex.load(tmp_path / "nothing") is None


def test_hits_keep_their_ids_across_edits_and_compaction(df, tmp_path):
    """Hits are read by Lance row id and mapped to item ids: the map must follow every edit, including
    the compaction of `save` (which renumbers rows), or a search would name the wrong items."""
    kw = KeywordIndex.from_catalog(df)
    assert kw.search("navy blue tshirt")[0][0] == "4"  # the row-id map is built here
    kw.remove(["1", "2"])
    kw.add(_frame([["6", "", "Zara Women Green Skirt", "Skirts", "Green"], ["7", "", "Nike Men Grey Hoodie", "Sweatshirts", "Grey"]]))
    kw.save(tmp_path)
    for item_id, name in [("3", "adidas black sneakers"), ("4", "roadster navy blue"), ("6", "zara green skirt"),
                          ("7", "nike grey hoodie")]:
        assert kw.search(name)[0][0] == item_id, name
        assert KeywordIndex.load(tmp_path).search(name)[0][0] == item_id
    assert not {"1", "2"} & set(kw.search("nike puma red white dress tshirt")[0])
