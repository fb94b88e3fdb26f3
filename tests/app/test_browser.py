"""The web app in a real headless Chromium: search, click through to similar items, upload a photo."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMEDRIVER.exists(), reason="needs Debian chromium + chromium-driver (/usr/bin/chromedriver)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(app):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chrome')}", "--window-size=1280,1100"):
        opts.add_argument(arg)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def test_search_click_similar_and_upload(driver, base_url, app_catalog, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, 60)
    driver.get(base_url + "/")
    box = driver.find_element(By.ID, "q")
    box.send_keys("watch")
    Select(driver.find_element(By.CSS_SELECTOR, 'select[data-column="masterCategory"]')).select_by_visible_text("Accessories")
    Select(driver.find_element(By.ID, "mode")).select_by_value("hybrid")
    driver.find_element(By.ID, "search-button").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#results .card")))
    cards = driver.find_elements(By.CSS_SELECTOR, "#results .card")
    assert len(cards) > 0 and "watch" in driver.find_element(By.ID, "summary").text
    assert "(hybrid)" in driver.find_element(By.ID, "summary").text
    # the "why" line under the photo: the words that matched, the facet value, the photo score
    why = cards[0].find_element(By.CSS_SELECTOR, ".why")
    assert why.is_displayed() and "words: watch" in why.text and "Watches ✓" in why.text and "photo " in why.text
    accessories = set(app_catalog.df.loc[app_catalog.df["masterCategory"] == "Accessories", "id"].astype(str))
    assert {c.get_attribute("data-id") for c in cards} <= accessories  # the filter menu took effect
    # thumbnails really loaded (not broken images)
    assert driver.execute_script("return document.querySelector('#results img').naturalWidth") > 0

    first = cards[0].get_attribute("data-id")
    cards[0].click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#similar .card")))
    assert driver.find_element(By.ID, "item").get_attribute("data-id") == first
    similar = driver.find_elements(By.CSS_SELECTOR, "#similar .card")
    assert len(similar) == 12 and first not in {c.get_attribute("data-id") for c in similar}
    assert all(c.find_element(By.CSS_SELECTOR, ".why").text.startswith("same type ") for c in similar)

    driver.get(base_url + "/")
    photo = app_catalog.df["image"].iloc[5]
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#categories li")) == 5)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#upload-similar .card")))
    probs = [float(e.text.rstrip("%")) for e in driver.find_elements(By.CSS_SELECTOR, "#categories .prob")]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.1
    assert driver.find_element(By.ID, "caption").text.startswith("Caption: a ")
    top = driver.find_element(By.CSS_SELECTOR, "#upload-similar .card").get_attribute("data-id")
    assert top == str(app_catalog.df["id"].iloc[5])  # the catalog photo finds its own item first
    assert not driver.find_element(By.ID, "upload-error").is_displayed()
    shot = tmp_path / "webapp.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    # a bad upload shows the server's message and the page keeps working
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    driver.find_element(By.ID, "photo").send_keys(str(bad))
    err = driver.find_element(By.ID, "upload-error")
    wait.until(lambda d: err.is_displayed())
    assert "not a supported image" in err.text
