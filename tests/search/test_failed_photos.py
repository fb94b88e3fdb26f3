"""Photos that fail to decode are never indexed, aligned, trained or scored on (each is reported)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from fashionlens.catalog import load_catalog
from fashionlens.embed import decoded
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.align import AlignConfig
from tests.conftest import write_image
from tests.embed.test_store import MeanColour

COLOURS = {"Red": (220, 40, 40), "Blue": (40, 40, 220)}


class ImageOnly(MeanColour):
    """An image tower without a text tower: `build_index` aligns it with `TextOnly`."""

    name = "mean-colour-image"
    modalities = ("image",)


class TextOnly(MeanColour):
    name = "char-count-text"
    modalities = ("text",)


def write_catalog(root: Path, n: int, bad: tuple[int, ...] = (), size: tuple[int, int] = (8, 8)) -> Path:
    """A Kaggle-layout folder of n solid-colour photos (red T-shirts, blue jeans, each in a dark and a
    light shade, one subCategory, a price); the photos at `bad` are corrupt."""
    rng = np.random.default_rng(0)
    rows = ["id,subCategory,articleType,baseColour,price,productDisplayName"]
    for i in range(n):
        hue, shade = ("Red" if i % 2 else "Blue"), ("Dark" if i // 2 % 2 else "Light")
        scale = 0.6 if shade == "Dark" else 1.0
        rgb = tuple(int(scale * c + rng.integers(-15, 15)) for c in COLOURS[hue])
        write_image(root / "images" / f"{i}.jpg", rgb, size)
        kind = "Tshirts" if hue == "Red" else "Jeans"
        rows.append(f"{i},Apparel,{kind},{shade} {hue},{100 + 50 * (i % 2) + int(rng.integers(0, 10))},"
                    f"{shade} {hue} {kind} {i}")
    for i in bad:
        (root / "images" / f"{i}.jpg").write_bytes(b"\x00 truncated")
    (root / "styles.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture()
def catalog(tmp_path):
    """40 items, item 7's photo corrupt, imported without decoding (as explore, sales and
    `categorize --no-check-images` do), so the failure surfaces at embedding time."""
    return load_catalog(write_catalog(tmp_path / "cat", 40, bad=(7,)), check_images=False)


def _warned(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, [str(w.message) for w in rec if w.category is UserWarning]


@pytest.mark.parametrize("encoders", [("tests.embed.test_store:MeanColour", "minilm-l6"),
                                      ("tests.search.test_failed_photos:ImageOnly",
                                       "tests.search.test_failed_photos:TextOnly")],
                         ids=["joint", "aligned"])
def test_build_index_leaves_the_item_out_and_reports_it_on_every_build(tmp_path, catalog, encoders):
    cfg = BuildConfig(encoder=encoders[0], text_encoder=encoders[1], label_column="articleType",
                      cache_dir=str(tmp_path / "cache"), align=AlignConfig(epochs=2, batch_size=16))
    for run in range(2):  # the second build reads the cache: the failure must not come from it
        idx, msgs = _warned(build_index, catalog, tmp_path / f"idx{run}", cfg, progress=False)
        assert any("item 7:" in m and "not an image" in m for m in msgs), (run, msgs)
        assert "7" not in idx.index.ids and len(idx.index) == 39 and decoded(idx.index.vectors).all()
        loaded = SearchIndex(tmp_path / f"idx{run}")
        assert loaded.catalog.ids == list(idx.index.ids) and loaded.info["n_items"] == 39
        report = json.loads((tmp_path / f"idx{run}" / "import_report.json").read_text())
        assert [i["id"] for i in report["issues"]] == ["7"] and report["n_ok"] == 39


def test_index_add_skips_the_failed_photo(tmp_path, catalog):
    cfg = BuildConfig(encoder="tests.embed.test_store:MeanColour", cache_dir=None)
    idx = build_index(catalog.subset(range(6)), tmp_path / "idx", cfg, progress=False)
    n, msgs = _warned(idx.add, catalog.subset(range(6, 10)), cache_dir=None)
    assert n == 3 and any("item 7:" in m for m in msgs)
    assert list(idx.index.ids) == idx.catalog.ids == [str(i) for i in range(10) if i != 7]


def test_categorizer_trains_and_scores_decoded_photos_only(tmp_path, catalog):
    from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer

    cfg = CategorizeConfig(label="articleType", encoder="tests.embed.test_store:MeanColour", method="probe",
                           tta=False, val_size=0.0)
    clf, msgs = _warned(Categorizer(cfg).fit, catalog)
    assert any("item 7:" in m for m in msgs)
    res, msgs = _warned(clf.evaluate, catalog)
    assert any("item 7:" in m for m in msgs)
    assert res["n"] == 39 and res["accuracy"] == 1.0  # the colour decides the type; no zero row mislabelled


def test_sales_features_treat_a_failed_photo_as_no_photo(tmp_path, catalog):
    from fashionlens.sales.forecast import build_features

    X, msgs = _warned(build_features, catalog, "image", MeanColour(), cache_dir=tmp_path / "c")
    assert any("item 7:" in m for m in msgs)
    assert X["has_image"].tolist() == [0.0 if i == 7 else 1.0 for i in range(40)]
    assert not X.filter(like="img_").iloc[7].any()
