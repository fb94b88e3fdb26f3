"""The explore report end to end: summary numbers, a self-contained HTML that chromium renders, the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fashionlens.catalog import Catalog
from fashionlens.explore.report import ExploreConfig, label_columns, run_explore


@pytest.fixture(scope="module")
def report(myntra_small, tmp_path_factory) -> tuple[Path, dict, Catalog]:
    from fashionlens.encoders.registry import create

    base = myntra_small.subset(np.arange(100))  # the same items as the Grad-CAM test: one shared cache
    df = base.df.copy()
    planted = df.iloc[[0]].assign(id="planted-copy")  # item 0 listed twice
    df = pd.concat([df, planted], ignore_index=True)
    rng = np.random.default_rng(0)
    df["sales"] = np.where(df["masterCategory"] == "Apparel", 20.0, 5.0) + rng.exponential(2.0, len(df))
    cat = Catalog(df, base.root)
    out = tmp_path_factory.mktemp("explore_report")
    cfg = ExploreConfig(ks=tuple(range(2, 7)), maps=("tsne",), target="sales", gradcam_column="masterCategory",
                        n_gradcam=2, n_why_similar=1, n_per_cluster=4, progress=False)
    summary = run_explore(cat, create("efficientnet-lite0"), out, cfg,
                          cache_dir=tmp_path_factory.getbasetemp() / "explore_cache")
    return out, summary, cat


def test_summary_numbers(report) -> None:
    out, summary, cat = report
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["n_items"] == 101 and 2 <= summary["k"] <= 6
    assert set(summary["ari"]) == {"masterCategory", "subCategory", "articleType", "baseColour", "usage"}
    assert summary["ari"]["masterCategory"] > 0.2  # visual clusters follow the product category ...
    assert summary["ari"]["masterCategory"] > summary["ari"]["usage"]  # ... far more than the usage label
    assert -1 <= summary["silhouette"] <= 1
    assert summary["near_duplicates"] >= 1
    dups = pd.read_csv(out / "near_duplicates.csv", dtype=str)
    assert ((dups["id_i"] == cat.ids[0]) & (dups["id_j"] == "planted-copy")).any()
    per_cluster = pd.DataFrame(summary["target"]["per_cluster"])
    assert per_cluster["n"].sum() == 101 and (per_cluster["ci_low"] <= per_cluster["mean"]).all()
    assert summary["gradcam"]["test_accuracy"] > 0.5
    clusters = pd.read_csv(out / "clusters.csv", dtype={"id": str})
    assert list(clusters.columns) == ["id", "cluster", "tsne_x", "tsne_y"] and len(clusters) == 101


def test_report_is_self_contained(report) -> None:
    out, summary, _ = report
    html = (out / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) >= 8 and all(s.startswith("data:image/") for s in srcs)
    assert "http://" not in html and "https://" not in html
    for section in ("Clusters", "TSNE map", "Thumbnail map", "Near-duplicates", "Why similar", "Grad-CAM", "sales per cluster"):
        assert section in html


def test_label_columns_skip_numeric_and_unique(report) -> None:
    _, _, cat = report
    cols = label_columns(cat)
    assert "sales" not in cols and "masterCategory" in cols


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report, tmp_path: Path) -> None:
    from PIL import Image

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    out, _, _ = report
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1200)
    non_white = (img.min(axis=2) < 235).mean()
    colourful = (img.max(axis=2) - img.min(axis=2) > 60).mean()  # the plots' coloured lines and bars
    assert non_white > 0.03 and colourful > 0.002
    assert img[:, :, 0].std() > 20  # not one flat colour


def test_cli_explore_json_and_errors(tiny_kaggle: Path, tmp_path: Path) -> None:
    from fashionlens.cli.main import app

    runner = CliRunner()
    args = ["explore", str(tiny_kaggle), "--out", str(tmp_path / "out"), "--maps", "pca", "--k-min", "2",
            "--k-max", "4", "--cache", str(tmp_path / "cache"), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_items"] == 12 and (tmp_path / "out" / "report.html").is_file()
    # the photos are solid red or blue squares: clusters follow the colour, never mix it, and ignore the type
    assert summary["agreement"]["baseColour"]["purity"] == 1.0
    assert summary["ari"]["baseColour"] > summary["ari"]["articleType"]
    bad = runner.invoke(app, [*args[:-1], "--columns", "nope"])
    assert bad.exit_code == 2 and "unknown column 'nope'" in bad.output
    bad_map = runner.invoke(app, [*args[:-1], "--maps", "mds"])
    assert bad_map.exit_code == 2 and "unknown map method" in bad_map.output
