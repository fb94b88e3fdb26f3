"""What the latency work must not change: result rows, the filter menus, each client's own hits."""

from __future__ import annotations

import math

import numpy as np


def test_rows_equal_the_catalog_rows(app, monkeypatch):
    """Result rows come from an Arrow copy of the catalog: the same values as its DataFrame rows,
    missing values as None, padding (-1) dropped."""
    from fashionlens.app.server import _arrow_table

    served = app.state.served
    df = served.indexes["myntra200"].catalog.df.copy()
    df.loc[df.index[5], "usage"] = None  # a missing label
    monkeypatch.setitem(served._tables, "myntra200", _arrow_table(df))
    rows = served.rows("myntra200", np.array([0.9, 0.8, 0.7, -np.inf]), np.array([5, 0, 17, -1]))
    assert [r["id"] for r in rows] == [str(df["id"].iloc[p]) for p in (5, 0, 17)]
    assert rows[0]["usage"] is None and rows[0]["score"] == 0.9
    for r, p in zip(rows[1:], (0, 17), strict=True):
        want = df.iloc[p].to_dict()
        for col in ("text", "articleType", "baseColour", "usage"):
            v = want[col]
            assert r[col] == (None if isinstance(v, float) and math.isnan(v) else v)
        assert "image" not in r and r["thumb"].startswith("/thumbs/")


def test_filter_menus_rendered_once_per_choice(app, client, monkeypatch):
    env = app.state.templates.env
    renders = []
    real = env.get_template

    def counting(name, *a, **kw):
        if name == "_filters.html":
            renders.append(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(env, "get_template", counting)
    app.state.served._fragments.clear()
    chosen = {"filter": "masterCategory:Accessories"}
    pages = [client.get("/", params={"q": q} | extra).text
             for q, extra in [("watch", chosen), ("bag", {}), ("belt", chosen), ("shoe", {})]]
    assert len(renders) == 2  # one render per distinct choice, not per page
    assert 'value="masterCategory:Accessories" selected' in pages[0] and 'value="masterCategory:Accessories" selected' in pages[2]
    assert " selected>" not in pages[1].split('<div class="filters">')[1].split("</div>")[0]
    assert pages[1].count('name="filter"') == pages[0].count('name="filter"') > 0


def test_batched_mixed_requests_get_their_own_hits(app, monkeypatch):
    """Hybrid, vector and keyword requests, with and without a filter, of different k, arriving while
    one forward holds the model: each gets the hits (and whys) it would get alone, and fusion runs with
    the model lock free."""
    import threading
    import time

    served = app.state.served
    idx = served.indexes["myntra200"]
    enc = served.encoders["myntra200"]
    queries = ["red tshirt", "black watch", "blue jeans", "white casual shoes", "brown wallet", "pink top",
               "green kurta", "grey track pants", "navy blue shirt"]
    modes = ["hybrid", "vector", "hybrid", "keyword", "hybrid", "vector", "hybrid", "vector", "hybrid"]
    filters = [None, None, {"masterCategory": "Apparel"}, None, None, {"masterCategory": "Apparel"}, None, None, None]
    ks = [5, 7, 6, 5, 8, 5, 6, 7, 5]
    want = [idx.search(q, k, f, m) for q, k, f, m in zip(queries, ks, filters, modes, strict=True)]
    encode, rank, calls, locked = enc.encode_texts, idx.rank, [], []

    def slow_encode(texts):  # the first forward holds the model while the others queue up
        calls.append(len(texts))
        time.sleep(0.3 if len(calls) == 1 else 0)
        return encode(texts)

    def spy_rank(*a, **kw):
        locked.append(served.lock.locked())
        return rank(*a, **kw)

    monkeypatch.setattr(enc, "encode_texts", slow_encode)
    monkeypatch.setattr(idx, "rank", spy_rank)
    served._queries.clear()
    got = {}

    def run(i):
        got[i] = served.search_text("myntra200", queries[i], ks[i], idx.filter_mask(filters[i]), modes[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    assert sum(calls) == 8 and len(calls) < 8  # keyword requests need no forward; the rest were coalesced
    for i, hits in enumerate(want):
        scores, rows, whys = got[i]
        assert rows.shape == (1, ks[i])
        assert [idx.catalog.ids[p] for p in rows[0] if p >= 0] == [h["id"] for h in hits], queries[i]
        assert whys == [h["why"] for h in hits]
    locked.clear()
    served.search_text("myntra200", "olive green shirt", 5, None, "hybrid")
    assert locked == [False]  # fusion and "why" run after the model lock is released
