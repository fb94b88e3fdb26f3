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
