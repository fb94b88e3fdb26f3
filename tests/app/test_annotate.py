"""The annotation page: API behaviour (httpx) and a real headless-browser session (selenium)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from fashionlens.app.annotate import create_app, plan_triplets
from fashionlens.catalog import load_catalog

CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture()
def catalog(tiny_kaggle):
    return load_catalog(tiny_kaggle)


def test_plan_is_seeded_and_candidates_share_the_article_type(catalog):
    plan = plan_triplets(catalog, 10, seed=1)
    assert plan == plan_triplets(catalog, 10, seed=1) and len(set(plan)) == 10
    kind = dict(zip(catalog.ids, catalog.column("articleType"), strict=True))
    for a, x, y in plan:
        assert len({a, x, y}) == 3 and kind[a] == kind[x] == kind[y]


def test_api_writes_answers_and_resumes(catalog, tmp_path):
    from fastapi.testclient import TestClient

    from fashionlens.perceptual.evaluate import load_triplets

    out = tmp_path / "answers.csv"
    client = TestClient(create_app(catalog, out, n=4))
    first = client.get("/api/next").json()
    assert first["answered"] == 0 and first["total"] == 4
    idx = first["triplet"]["index"]
    assert client.get(f"/image/{first['triplet']['anchor']}").status_code == 200
    assert client.get("/image/..%2Fstyles.csv").status_code == 404  # only catalog photos
    assert client.post("/api/answer", json={"index": idx, "key": "7"}).status_code == 422
    s = client.post("/api/answer", json={"index": idx, "key": "2"}).json()
    assert s["answered"] == 1
    client.post("/api/answer", json={"index": idx, "key": "1"})  # a repeat is not recorded twice
    assert len(pd.read_csv(out)) == 1
    # a new server on the same file resumes after the answered triplet
    again = TestClient(create_app(catalog, out, n=4)).get("/api/next").json()
    assert again["answered"] == 1 and again["triplet"]["index"] != idx
    t = load_triplets(out)
    assert t.p_left.tolist() == [0.0]  # key 2 = the right/b candidate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("annotation server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMEDRIVER.exists(), reason="needs Debian chromium + chromium-driver")
def test_browser_session_answers_land_in_csv_and_restart_resumes(catalog, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "answers.csv"
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        def progress() -> str:
            return driver.find_element(By.ID, "progress").text

        with _Server(create_app(catalog, out, n=5)) as url:
            driver.get(url)
            wait = WebDriverWait(driver, 30)
            wait.until(lambda d: progress().startswith("0 / 5"))
            # the photos really load
            wait.until(lambda d: d.execute_script(
                "return document.getElementById('ref').naturalWidth") == 60)
            body = driver.find_element(By.TAG_NAME, "body")
            for key, done in (("1", 1), ("2", 2), (" ", 3)):
                body.send_keys(key)
                wait.until(lambda d, done=done: progress().startswith(f"{done} / 5"))
        df = pd.read_csv(out)
        assert df["choice"].tolist() == [0.0, 1.0, 0.5]
        assert df["anchor"].map(lambda p: Path(p).is_file()).all()
        # a fresh server on the same file: the page resumes at answer 4
        with _Server(create_app(catalog, out, n=5)) as url:
            driver.get(url)
            WebDriverWait(driver, 30).until(lambda d: progress().startswith("3 / 5"))
            seen = driver.execute_script("return document.body.dataset.index")
            answered = {tuple(r) for r in df[["anchor_id", "a_id", "b_id"]].astype(str).values}
            plan = plan_triplets(catalog, 5, 0)
            assert int(seen) == next(i for i, t in enumerate(plan) if t not in answered)
            body = driver.find_element(By.TAG_NAME, "body")
            for key, done in (("2", 4), ("0", 5)):
                body.send_keys(key)
                WebDriverWait(driver, 30).until(lambda d, done=done: progress().startswith(f"{done} / 5"))
            assert "All done" in driver.find_element(By.ID, "status").text
        assert pd.read_csv(out)["choice"].tolist() == [0.0, 1.0, 0.5, 1.0, 0.5]
        assert len({tuple(r) for r in pd.read_csv(out)[["anchor_id", "a_id", "b_id"]].astype(str).values}) == 5
    finally:
        driver.quit()
