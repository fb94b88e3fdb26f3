"""The docs screenshot (docs/img/webapp.png): the web app with a real categorizer, in headless Chromium.

    .venv/bin/python benchmarks/app_screenshot.py --index /tmp/app_bench/encoder_index --out docs/img/webapp.png

Fits a logistic-probe articleType categorizer on 1,500 Myntra items (efficientnet-lite0 features,
cached), serves it with the index on 127.0.0.1, uploads a held-out handbag photo (in neither the index
nor the categorizer's training items) and saves the page.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

MYNTRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "myntra"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a real index directory (e.g. app_load.py's encoder_index)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/webapp.png"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from fashionlens.app.server import create_app
    from fashionlens.catalog import load_catalog
    from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
    from fashionlens.embed import DEFAULT_CACHE
    from fashionlens.search.index import SearchIndex

    work = Path(tempfile.mkdtemp(prefix="fashionlens_shot_"))
    full = load_catalog(MYNTRA, check_images=False)
    train = full.sample(1500, seed=1)
    cfg = CategorizeConfig(label="articleType", method="probe", augment="none", tta=False)
    Categorizer(cfg, cache_dir=str(DEFAULT_CACHE)).fit(train).save(work / "articleType")
    app = create_app([args.index], [work / "articleType"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--no-first-run",
              f"--user-data-dir={work / 'chrome'}", "--window-size=1280,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        df = full.df
        held_out = df[~df["id"].isin(set(SearchIndex(args.index).catalog.ids) | set(train.ids))]
        photo = held_out.loc[held_out["articleType"] == "Handbags", "image"].iloc[0]
        driver.get(f"http://127.0.0.1:{port}/?q=blue+denim+jeans")
        driver.find_element(By.ID, "photo").send_keys(str(photo))
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#categories li")) == 5
                                         and d.find_elements(By.CSS_SELECTOR, "#upload-similar .card"))
        driver.execute_script("document.querySelector('.upload').scrollIntoView()")
        time.sleep(1)
        driver.save_screenshot(str(args.out))
        print("top 5:", [e.text.replace("\n", " ") for e in driver.find_elements(By.CSS_SELECTOR, "#categories li")])
        print(f"saved {args.out}")
    finally:
        driver.quit()
        server.should_exit = True


if __name__ == "__main__":
    main()
