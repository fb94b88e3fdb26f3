"""Upload memory (issue 16, item 2): bomb-ish photos are decoded shrunk, a bounded number at a time."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
from PIL import Image

from tests.app.conftest import ColourCategorizer
from tests.app.upload_load import burst

# 32 grey 5000 x 5000 PNGs (35 KB each) at once, measured on 2 cores: +4,372 MB before uploads were
# shrunk while decoding (each request held its 100 MB RGB decode until its turn at the model; fresh
# process, tests/app/upload_load.py), +110 MB after (here; +112 MB in a fresh process).
GROWTH_BOUND_MB = 500


@pytest.fixture()
def bomb_client(app):
    """The real app over the session's loaded index, with the default 25 MP / 10 MB limits."""
    from fastapi.testclient import TestClient

    from fashionlens.app.server import create_app

    bombs = create_app(indexes=app.state.served.indexes, categorizers={"colour": ColourCategorizer()},
                       warm_up=False, optimize=False, max_decodes=2)
    with TestClient(bombs) as client:
        yield client


def test_32_concurrent_bomb_uploads_stay_under_the_memory_bound(bomb_client):
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    res = burst(bomb_client, clients=32, mode="L", side=5000)
    assert res["reference_ok"] and res["correct"] == 32, res  # every upload got its colour's answer
    assert res["growth_mb"] < GROWTH_BOUND_MB, res


def test_at_most_max_decodes_run_at_once_off_the_request_threads(bomb_client, monkeypatch):
    from fashionlens.app import server

    running, peak, names, lock = [0], [0], set(), threading.Lock()
    decode = server.decode_image

    def slow_decode(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.2)  # long enough for every request to be waiting meanwhile
        try:
            return decode(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(server, "decode_image", slow_decode)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (220, 30, 30)).save(buf, "PNG")
    codes: list[int] = []

    def post() -> None:
        codes.append(bomb_client.post("/api/categorize", files={"file": ("red.png", buf.getvalue())}).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    assert peak[0] == 2  # the cap, and it was reached: decodes do overlap up to it
    assert names and all(n.startswith("fashionlens-decode") for n in names)


def test_models_get_the_upload_shrunk_to_upload_side(client, stand_in, monkeypatch):
    seen: list[tuple[int, int]] = []
    predict = stand_in.predict_top

    def spy(images, k=5):
        seen.extend(im.size for im in images)
        return predict(images, k)

    monkeypatch.setattr(stand_in, "predict_top", spy)
    buf = io.BytesIO()
    Image.new("RGB", (2400, 1600), (30, 40, 220)).save(buf, "JPEG")
    res = client.post("/api/categorize", files={"file": ("big.jpg", buf.getvalue())})
    assert res.status_code == 200 and res.json()["top"][0]["label"] == "blue"
    assert seen == [(1024, 683)]  # UPLOAD_SIDE on the longer side, aspect kept
