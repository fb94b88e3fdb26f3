"""The HTTP API through FastAPI's TestClient: every endpoint, every kind of bad upload."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import photo_bytes


def _jpeg_of(client, item_id: str) -> bytes:
    """A catalog item's own photo, as bytes."""
    path = client.app.state.served.indexes["myntra200"].catalog.df.set_index("id").loc[item_id, "image"]
    with open(path, "rb") as fh:
        return fh.read()


def assert_json_error(resp, status: int, *words: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["status"] == status
    for w in words:
        assert w.lower() in body["error"].lower(), body
    return body


def test_healthz_and_indexes(client):
    assert client.get("/healthz").json() == {"status": "ok", "indexes": 1, "categorizers": 1}
    info = client.get("/api/indexes").json()
    assert [i["name"] for i in info["indexes"]] == ["myntra200"]
    idx = info["indexes"][0]
    assert idx["n_items"] == 200 and idx["encoder"].startswith("aligned(efficientnet-lite0")
    assert "articleType" in idx["filters"] and "image" not in idx["filters"]
    assert info["encoders"] == [idx["encoder"]]
    assert info["categorizers"] == [{"name": "colour", "label": "colour", "method": "stand-in", "n_classes": 6}]
    assert info["captioner"] is True


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/search", "/api/items/{item_id}", "/api/items/{item_id}/similar", "/api/similar",
              "/api/categorize", "/api/indexes", "/healthz"):
        assert p in paths
    assert client.get("/docs").status_code == 200


def test_search_ranks_and_filters(client, app_catalog):
    df = app_catalog.df
    res = client.get("/api/search", params={"q": "watch", "k": 7}).json()
    hits = res["results"]
    assert len(hits) == 7
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all("image" not in h and h["thumb"].startswith("/thumbs/") for h in hits)  # no server paths leak
    # the aligned text tower finds watches: far more of them in the top 7 than their share of the catalog
    share = (df["articleType"] == "Watches").mean()
    assert sum(h["articleType"] == "Watches" for h in hits) / 7 > 3 * share
    # a repeated filter narrows to items matching every one (case-insensitive)
    colour = df["baseColour"].value_counts().index[0]
    res = client.get("/api/search", params=[("q", "shirt"), ("k", 50), ("filter", "masterCategory:apparel"),
                                             ("filter", f"baseColour:{colour}")]).json()
    want = ((df["masterCategory"] == "Apparel") & (df["baseColour"] == colour)).sum()
    assert len(res["results"]) == min(50, want) > 0
    assert all(h["masterCategory"] == "Apparel" and h["baseColour"] == colour for h in res["results"])
    assert res["filters"] == {"masterCategory": "apparel", "baseColour": colour}


def test_search_query_cache_gives_same_answer(client):
    a = client.get("/api/search", params={"q": "Blue Jeans", "k": 5}).json()["results"]
    b = client.get("/api/search", params={"q": "blue jeans ", "k": 5}).json()["results"]
    assert [h["id"] for h in a] == [h["id"] for h in b]


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"q": "shirt", "filter": "colour:red"}, 400, ["unknown filter column 'colour'", "baseColour"]),
    ({"q": "shirt", "filter": "nocolon"}, 400, ["bad filter 'nocolon'"]),
    ({"q": "   "}, 400, ["empty query"]),
    ({}, 422, ["q", "required"]),
    ({"q": "shirt", "k": 0}, 422, ["k"]),
    ({"q": "shirt", "index": "nope"}, 404, ["unknown index 'nope'", "myntra200"]),
])
def test_search_errors_are_json(client, params, status, words):
    assert_json_error(client.get("/api/search", params=params), status, *words)


def test_item_and_similar_items(client, app_catalog):
    df = app_catalog.df
    item_id = str(df["id"].iloc[0])
    it = client.get(f"/api/items/{item_id}").json()
    assert it["id"] == item_id and it["text"] == df["text"].iloc[0] and it["articleType"] == df["articleType"].iloc[0]
    assert_json_error(client.get("/api/items/no-such-id"), 404, "no item with id 'no-such-id'")
    # photo similarity groups article types: same-type neighbours far above chance, query item excluded
    rates, chance = [], []
    for iid, art in df[["id", "articleType"]].head(20).itertuples(index=False):
        sim = client.get(f"/api/items/{iid}/similar", params={"k": 5}).json()["results"]
        assert len(sim) == 5 and str(iid) not in {h["id"] for h in sim}
        rates.append(np.mean([h["articleType"] == art for h in sim]))
        chance.append((df["articleType"] == art).mean())
    assert np.mean(rates) > 2 * np.mean(chance)
    sim = client.get(f"/api/items/{item_id}/similar", params={"k": 100, "filter": "masterCategory:Footwear"}).json()
    assert sim["results"] and all(h["masterCategory"] == "Footwear" for h in sim["results"])
    assert_json_error(client.get("/api/items/no-such-id/similar"), 404, "no-such-id")


def test_similar_photo_finds_the_item_itself(client, app_catalog):
    item_id = str(app_catalog.df["id"].iloc[3])
    res = client.post("/api/similar", params={"k": 3}, files={"file": ("x.jpg", _jpeg_of(client, item_id), "image/jpeg")})
    hits = res.json()["results"]
    assert res.status_code == 200 and len(hits) == 3
    assert hits[0]["id"] == item_id and hits[0]["score"] > 0.99


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_categorize_accepts_every_format(client, fmt):
    res = client.post("/api/categorize", files={"file": (f"p.{fmt.lower()}", photo_bytes(fmt, (30, 40, 220)))})
    assert res.status_code == 200, res.text
    body = res.json()
    top = body["top"]
    assert len(top) == 5 and top[0]["label"] == "blue"
    probs = [t["prob"] for t in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert body["caption"] == "a blue product" and body["categorizer"] == "colour" and body["label"] == "colour"


def test_categorize_unknown_categorizer(client):
    assert_json_error(client.post("/api/categorize", params={"categorizer": "nope"}, files={"file": ("a.jpg", photo_bytes())}),
           404, "unknown categorizer 'nope'")


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _big_png() -> bytes:  # 3000 x 2000 = 6 M pixels > the test app's 4 M, yet only a few KB on the wire
    buf = io.BytesIO()
    Image.new("L", (3000, 2000)).save(buf, "PNG")
    return buf.getvalue()


def _tiff() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "TIFF")
    return buf.getvalue()


BAD_UPLOADS = [
    ("empty", {"file": ("a.jpg", b"", "image/jpeg")}, 400, ["empty file"]),
    ("text named .jpg", {"file": ("notes.jpg", b"hello, this is not a photo\n" * 20, "image/jpeg")}, 415,
     ["notes.jpg", "not a supported image"]),
    ("truncated jpeg", {"file": ("cut.jpg", _truncated_jpeg(), "image/jpeg")}, 400, ["cut.jpg", "truncated"]),
    ("too many pixels", {"file": ("huge.png", _big_png(), "image/png")}, 413, ["3000x2000", "pixels"]),
    ("too many bytes", {"file": ("big.jpg", b"\xff\xd8\xff" + b"\0" * (2 * 1024 * 1024), "image/jpeg")}, 413,
     ["larger than the limit"]),
    ("tiff", {"file": ("a.tif", _tiff(), "image/tiff")}, 415, ["not a supported image"]),
    ("wrong field", {"image": ("a.jpg", photo_bytes(), "image/jpeg")}, 422, ["missing form field 'file'"]),
]


@pytest.mark.parametrize("endpoint", ["/api/similar", "/api/categorize"])
@pytest.mark.parametrize(("case", "files", "status", "words"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_get_clear_4xx_and_server_keeps_serving(client, stand_in, endpoint, case, files, status, words):
    calls = stand_in.calls
    assert_json_error(client.post(endpoint, files=files), status, *words)
    assert stand_in.calls == calls  # no model ran on a refused upload
    ok = client.post(endpoint, files={"file": ("ok.png", photo_bytes("PNG"))})
    assert ok.status_code == 200


def test_body_limit_refuses_by_content_length_before_reading(client):
    resp = client.post("/api/similar", content=b"x" * (3 * 1024 * 1024),
                       headers={"content-type": "multipart/form-data; boundary=zz"})
    assert_json_error(resp, 413, "larger than the limit")


def test_uploads_write_nothing(client, small_index_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in small_index_dir.rglob("*"))
    for _ in range(3):
        assert client.post("/api/similar", files={"file": ("a.jpg", photo_bytes())}).status_code == 200
    assert sorted(p.name for p in small_index_dir.rglob("*")) == before
    assert list(tmp_path.iterdir()) == []


def test_thumbnails_are_cacheable(client, app_catalog):
    item_id = str(app_catalog.df["id"].iloc[0])
    r = client.get(f"/thumbs/{item_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    assert Image.open(io.BytesIO(r.content)).size[0] > 0
    again = client.get(f"/thumbs/{item_id}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert_json_error(client.get("/thumbs/no-such-id"), 404, "no-such-id")


def test_concurrent_requests_match_sequential(client, app_catalog):
    queries = ["red dress", "black shoes", "watch", "blue jeans", "handbag", "white shirt"]
    want = {q: [h["id"] for h in client.get("/api/search", params={"q": q, "k": 5}).json()["results"]] for q in queries}
    photo = photo_bytes(colour=(200, 200, 30))
    want_photo = [h["id"] for h in client.post("/api/similar", files={"file": ("p.jpg", photo)}).json()["results"]]
    got, errors = [], []

    def worker(i: int) -> None:
        try:
            if i % 3 == 0:
                r = client.post("/api/similar", files={"file": ("p.jpg", photo)})
                got.append(("photo", [h["id"] for h in r.json()["results"]]))
            else:
                q = queries[i % len(queries)] + " " * (i % 2)  # half miss the query cache's exact key
                r = client.get("/api/search", params={"q": q, "k": 5})
                got.append((q.strip(), [h["id"] for h in r.json()["results"]]))
        except Exception as e:  # noqa: BLE001 -- collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 24
    for key, ids in got:
        assert ids == (want_photo if key == "photo" else want[key])


def test_web_pages(client, app_catalog):
    html = client.get("/", params={"q": "watch", "filter": ["", "masterCategory:Accessories"]}).text
    assert 'class="card"' in html and "results for" in html
    assert 'value="masterCategory:Accessories" selected' in html
    item_id = str(app_catalog.df["id"].iloc[0])
    page = client.get(f"/items/{item_id}").text
    assert app_catalog.df["text"].iloc[0] in page and page.count('class="card"') == 12
    missing = client.get("/items/no-such-id", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "no item with id" in missing.text and "<html" in missing.text
    assert client.get("/static/app.js").status_code == 200
    assert_json_error(client.get("/no/such/page"), 404, "no page at /no/such/page")


def test_concurrent_text_queries_share_forward_passes_and_index_scans(app, monkeypatch):
    served = app.state.served
    idx = served.indexes["myntra200"]
    enc, index = served.encoders["myntra200"], idx.index
    queries = [f"batched query number {i}" for i in range(12)]
    mask = idx.filter_mask({"masterCategory": "Apparel"})
    masks = [mask if i % 4 == 3 else None for i in range(12)]  # some requests carry a filter
    ks = [5 + i % 3 for i in range(12)]
    want = [index.search(enc.encode_texts([q]), k, m) for q, k, m in zip(queries, ks, masks)]
    calls, scans, encode, search = [], [], enc.encode_texts, index.search

    def slow_encode(texts):  # the first call holds the model while the other requests queue up
        calls.append(len(texts))
        time.sleep(0.3 if len(calls) == 1 else 0)
        return encode(texts)

    def counted_search(q, k, mask=None, exclude=None):
        scans.append(len(q))
        return search(q, k, mask, exclude)

    monkeypatch.setattr(enc, "encode_texts", slow_encode)
    monkeypatch.setattr(index, "search", counted_search)
    got = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, served.search_text("myntra200", queries[i],
                                                                                         ks[i], masks[i], "vector")))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(calls) == 12 and len(calls) < 12  # coalesced into fewer forward passes
    assert sum(scans) == 12 and len(scans) < 12 and max(scans) > 1  # unfiltered queries share a scan
    for i in range(12):
        assert got[i][1].shape == (1, ks[i])
        np.testing.assert_array_equal(got[i][1], want[i][1])
        np.testing.assert_allclose(got[i][0], want[i][0], atol=1e-5)
    calls.clear()
    again = served.search_text("myntra200", queries[0].upper(), ks[0], None, "vector")  # the LRU cache: no forward
    assert calls == [] and np.array_equal(again[1], want[0][1])


def test_several_indexes_and_categorizers_get_selectors(app, stand_in):
    from fastapi.testclient import TestClient

    from fashionlens.app.server import create_app

    idx = app.state.served.indexes["myntra200"]
    two = create_app(indexes={"women": idx, "men": idx}, categorizers={"colour": stand_in, "colour2": stand_in})
    with TestClient(two) as c:
        html = c.get("/", params={"index": "men"}).text
        assert 'id="index-select"' in html and 'value="men" selected' in html and "(aligned(efficientnet-lite0" in html
        assert 'id="categorizer-select"' in html and 'value="colour2"' in html
        assert c.get("/api/search", params={"q": "shoe", "index": "men"}).json()["index"] == "men"
        r = c.post("/api/categorize", params={"categorizer": "colour2"}, files={"file": ("a.png", photo_bytes("PNG"))})
        assert r.json()["categorizer"] == "colour2" and "caption" not in r.json()
