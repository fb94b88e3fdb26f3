"""Hybrid search through the API and the pages: mode parameter, the "why" of each hit, similar items' label match."""

from __future__ import annotations

import threading

import pytest


def _pair(df):
    """A (baseColour, articleType) pair with several items in the served 200."""
    n = df.groupby(["baseColour", "articleType"]).size()
    return n[n >= 3].index[0]


def test_search_defaults_to_hybrid_and_says_why(client, app_catalog):
    colour, kind = _pair(app_catalog.df)
    q = f"{colour} {kind}".lower()
    body = client.get("/api/search", params={"q": q, "k": 10}).json()
    assert body["mode"] == "hybrid" and body["note"] is None
    top = body["results"][0]
    assert (top["baseColour"], top["articleType"]) == (colour, kind)
    assert top["why"]["facets"] == {"baseColour": colour, "articleType": kind}
    assert top["why"]["terms"] and isinstance(top["why"]["vector"], float)
    both = sum((r["baseColour"], r["articleType"]) == (colour, kind) for r in body["results"])
    vec = client.get("/api/search", params={"q": q, "k": 10, "mode": "vector"}).json()
    assert vec["mode"] == "vector" and all(r["why"]["terms"] == [] for r in vec["results"])
    assert both >= sum((r["baseColour"], r["articleType"]) == (colour, kind) for r in vec["results"])
    bad = client.get("/api/search", params={"q": q, "mode": "fuzzy"})
    assert bad.status_code == 422 and "mode" in bad.json()["error"]


def test_concurrent_hybrid_queries_equal_single_searches(app):
    served = app.state.served
    idx = served.indexes["myntra200"]
    queries = ["red tshirt", "black watch", "blue jeans", "white casual shoes", "brown wallet", "pink top"]
    got = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, served.search_text("myntra200", queries[i], 5)))
               for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, q in enumerate(queries):
        want = idx.search(q, k=5)
        assert [idx.catalog.ids[p] for p in got[i][1][0]] == [h["id"] for h in want]
        assert got[i][2] == [h["why"] for h in want]


def test_similar_items_say_whether_type_and_colour_match(client, app_catalog):
    item = app_catalog.df.iloc[3]
    res = client.get(f"/api/items/{item['id']}/similar", params={"k": 12}).json()["results"]
    for r in res:
        assert r["match"] == {"type": r["articleType"] == item["articleType"], "colour": r["baseColour"] == item["baseColour"]}
    page = client.get(f"/items/{item['id']}").text
    assert page.count('class="why"') == 12 and "same type" in page and ("colour ✓" in page or "colour ✗" in page)


def test_search_page_has_mode_menu_and_why_lines(client):
    html = client.get("/", params={"q": "black watch", "mode": "hybrid"}).text
    assert 'id="mode"' in html and '<option value="hybrid" selected' in html
    assert html.count('class="why"') == 24 and "words: black" in html and "(hybrid)" in html
    vec = client.get("/", params={"q": "black watch", "mode": "vector"}).text
    assert '<option value="vector" selected' in vec and "words:" not in vec


@pytest.fixture(scope="module")
def photos_only(tmp_path_factory):
    from fastapi.testclient import TestClient

    from fashionlens.app.server import create_app
    from tests.search.stand_in import build

    idx = build(tmp_path_factory.mktemp("photos_only"), with_texts=False)
    with TestClient(create_app(indexes={"photos": idx})) as c:
        yield c


def test_index_without_texts_is_searched_by_photo_with_a_note(photos_only):
    body = photos_only.get("/api/search", params={"q": "red dress", "mode": "hybrid"}).json()
    assert body["mode"] == "vector" and "photo only" in body["note"] and len(body["results"]) == 12
    html = photos_only.get("/", params={"q": "red dress"}).text
    assert 'id="note"' in html and "photo only" in html and '<option value="vector" selected' in html
