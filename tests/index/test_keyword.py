"""The keyword side on its own: analyzer, fields (incl. H&M descriptions), save/load, edits, old Lance folders."""

from __future__ import annotations

import threading

import numpy as np
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
from fashionlens.utils import FolderError


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


def test_saves_reloads_and_edits_in_memory_until_save(df, tmp_path):
    kw = KeywordIndex.from_catalog(df)
    kw.save(tmp_path)
    assert (tmp_path / KEYWORD_DIR / "analyzer.json").is_file()
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


def test_hits_keep_their_ids_across_edits(df, tmp_path):
    """Edits rebuild the BM25 matrices: every hit must still name its own item, before and after save."""
    kw = KeywordIndex.from_catalog(df)
    assert kw.search("navy blue tshirt")[0][0] == "4"
    kw.remove(["1", "2"])
    kw.add(_frame([["6", "", "Zara Women Green Skirt", "Skirts", "Green"], ["7", "", "Nike Men Grey Hoodie", "Sweatshirts", "Grey"]]))
    kw.save(tmp_path)
    for item_id, name in [("3", "adidas black sneakers"), ("4", "roadster navy blue"), ("6", "zara green skirt"),
                          ("7", "nike grey hoodie")]:
        assert kw.search(name)[0][0] == item_id, name
        assert KeywordIndex.load(tmp_path).search(name)[0][0] == item_id
    assert not {"1", "2"} & set(kw.search("nike puma red white dress tshirt")[0])


def write_lance_folder(df, folder, deleted: str | None = "3"):
    """An index folder's keyword side as the earlier LanceDB engine wrote it (table `docs` + analyzer.json),
    with the row of item `deleted` deleted in Lance."""
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    from fashionlens.utils import write_json

    docs, analyzer = documents(df), Analyzer.from_texts([*documents(df)["name"], *documents(df)["labels"]])
    root = folder / KEYWORD_DIR
    tbl = lancedb.connect(str(root)).create_table("docs", pa.table(
        {"id": df["id"].astype(str).tolist()} | {f: [analyzer(t) for t in docs[f]] for f in ("name", "labels")}))
    for f in ("name", "labels"):
        tbl.create_index(f, config=FTS(stem=True, remove_stop_words=False, ascii_folding=True))
    if deleted is not None:
        tbl.delete(f"id = '{deleted}'")  # a deleted row: not part of the index any more
    write_json(root / "analyzer.json", {**analyzer.to_dict(), "fields": ["name", "labels"]})


def test_an_old_lance_keyword_folder_loads_and_converts_on_save(df, tmp_path):
    write_lance_folder(df, tmp_path)
    old = KeywordIndex.load(tmp_path)
    assert len(old) == 3 and old.search("t-shirt")[0] in (["1", "4"], ["4", "1"]) and old.search("adidas")[0] == []
    assert old.search("navy blue tee")[0][0] == "4"
    fresh = KeywordIndex.from_catalog(df[df["id"] != "3"])
    for q in ("red dress", "men white tshirt", "navy blue"):  # the same documents: the same ranking as a fresh build
        assert old.search(q)[0] == fresh.search(q)[0], q
    old.save(tmp_path)
    assert not (tmp_path / KEYWORD_DIR / "docs.lance").exists()  # rewritten in the current format
    assert KeywordIndex.load(tmp_path).search("red dress")[0] == fresh.search("red dress")[0]


def test_load_never_unpickles_and_names_a_damaged_folder(df, tmp_path):
    KeywordIndex.from_catalog(df).save(tmp_path)
    matrix = tmp_path / KEYWORD_DIR / "name" / "data.csc.index.npy"
    np.save(matrix, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)  # a pickled array
    with pytest.raises(FolderError, match=r"keywords: cannot read the keyword index .*allow_pickle"):
        KeywordIndex.load(tmp_path)
    KeywordIndex.from_catalog(df[df["id"] != "4"]).save(tmp_path / "other")
    (tmp_path / KEYWORD_DIR / "name").rename(tmp_path / "spare")
    (tmp_path / "other" / KEYWORD_DIR / "name").rename(tmp_path / KEYWORD_DIR / "name")  # 3 rows beside 4 documents
    with pytest.raises(FolderError, match="do not match docs.parquet"):
        KeywordIndex.load(tmp_path)
    (tmp_path / KEYWORD_DIR / "docs.parquet").unlink()
    with pytest.raises(FolderError, match=r"keywords: cannot read the keyword index .*docs.parquet"):
        KeywordIndex.load(tmp_path)


def test_concurrent_searches_equal_sequential_ones(df):
    """Also right after an edit, when the first searches race to rebuild the matrices."""
    many = pd.concat([df] * 50, ignore_index=True).assign(id=[str(i) for i in range(200)])
    want_index = KeywordIndex.from_catalog(many)
    kw = KeywordIndex.from_catalog(many)
    kw.remove(["0", "1"])
    kw.add(many.iloc[:2])
    want_index.remove(["0", "1"])
    want_index.add(many.iloc[:2])
    queries = ["navy blue tee", "red dress", "black sneakers", "men white t-shirt", "puma", "roadster"] * 10
    want = [want_index.search(q, 20) for q in queries]
    got: dict[int, tuple] = {}

    def run(i: int) -> None:
        got[i] = kw.search(queries[i], 20)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[i][0] == want[i][0] and np.array_equal(got[i][1], want[i][1]) for i in range(len(queries)))
