"""Sales importers (VISUELLE, H&M, listings), target checks and the `fashionlens sales` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fashionlens.catalog import CatalogError, load_catalog
from fashionlens.cli.sales import app
from fashionlens.sales.data import (
    detect_layout,
    load_hm,
    load_listings,
    load_sales_catalog,
    load_visuelle,
)
from fashionlens.sales.forecast import FeatureSpec, evaluate, resolve_target, split_catalog
from tests.conftest import write_image

SEASONS = ["SS17", "AW17", "SS18", "AW18", "SS19", "AW19"]


def write_visuelle(root, n=36, seed=0):
    """A tiny VISUELLE folder: red items sell ~3x more than blue ones; one photo is missing."""
    rng = np.random.default_rng(seed)
    rows = ["external_code,season,category,color,fabric,image_path," + ",".join(map(str, range(12)))]
    for i in range(n):
        red = i % 2 == 0
        if i != 5:  # item 5 has no photo file
            write_image(root / "images" / f"{100 + i}.jpg", (220, 20, 20) if red else (20, 20, 220))
        weeks = rng.poisson(30 if red else 10, 12)
        cat = ["shorts", "culottes", "dress"][i % 3]
        rows.append(f"{100 + i},{SEASONS[i % 6]},{cat},{'red' if red else 'blue'},cotton,images/{100 + i}.jpg,"
                    + ",".join(map(str, weeks)))
    (root / "sales.csv").write_text("\n".join(rows) + "\n")
    return root


def write_hm(root):
    arts = ["article_id,product_code,prod_name,product_type_name,colour_group_name,detail_desc"]
    for k in range(6):
        arts.append(f"07{k}000100{k},7{k}0001,Item {k},{'Dress' if k % 2 else 'Trousers'},Black,A nice thing {k}")
    (root / "articles.csv").write_text("\n".join(arts) + "\n")
    trans = ["t_dat,customer_id,article_id,price",
             "2020-01-05,c1,0700001000,0.05", "2020-01-07,c2,0700001000,0.03",
             "2020-02-01,c3,0710001001,0.02", "2019-12-01,c4,0720001002,0.04",  # before the window
             "2020-01-10,c5,720001002,0.06"]  # unpadded id, as in some exports
    (root / "transactions_train.csv").write_text("\n".join(trans) + "\n")
    write_image(root / "images" / "070" / "0700001000.jpg")
    return root


def test_visuelle_fixture(tmp_path):
    cat = load_sales_catalog(write_visuelle(tmp_path))
    assert detect_layout(tmp_path) == "visuelle" and detect_layout(tmp_path / "sales.csv") == "visuelle"
    assert len(cat) == 36  # the item without a photo is kept for metadata-only models
    assert not cat.df.loc[cat.df["id"] == "105", "has_image"].item()
    weeks = cat.df[[f"week_{k}" for k in range(12)]].to_numpy()
    assert np.allclose(cat.df["total"], weeks.sum(1))
    assert set(cat.df["season_type"]) == {"SS", "AW"} and cat.df["year"].min() == 2017
    t = resolve_target(cat, "weekly")
    assert t.values.shape == (36, 12) and t.task == "regression"


def test_real_visuelle(shared_data):
    cat = load_visuelle(shared_data / "visuelle")
    assert len(cat) == 550 and cat.df["has_image"].all()
    train, test = split_catalog(cat, test_where={"season": ["SS19", "AW19"]})
    assert set(cat.df["season"].iloc[test]) == {"SS19", "AW19"} and len(train) + len(test) == 550
    assert resolve_target(cat, "total").values.sum() > 0


def test_sales_and_catalog_read_visuelle_alike_even_with_a_bom(tmp_path):
    write_visuelle(tmp_path)
    csv = tmp_path / "sales.csv"
    csv.write_text("\ufeff" + csv.read_text(), encoding="utf-8")  # as Excel saves "CSV UTF-8"
    assert detect_layout(tmp_path) == "visuelle" and detect_layout(csv) == "visuelle"
    sales = load_sales_catalog(tmp_path)
    assert len(sales) == 36 and sales.df["id"].iloc[0] == "100"
    cat = load_catalog(tmp_path, check_images=False)
    assert cat.report.format == "visuelle"
    assert [i for i in sales.ids if i != "105"] == cat.ids  # 105 has no photo: sales keeps it, a catalog skips it
    assert sales.select_ids(cat.ids).texts == cat.texts and cat.texts[0] == "red cotton shorts"


def test_sales_and_catalog_read_hm_alike(tmp_path):
    write_hm(tmp_path)
    sales = load_hm(tmp_path)
    cat = load_catalog(tmp_path)
    assert cat.ids == ["0700001000"] and cat.report.n_skipped == 5  # the other 5 have no photo
    assert sales.select_ids(cat.ids).texts == cat.texts == ["Item 0. A nice thing 0"]


def test_hm_fixture_window(tmp_path):
    cat = load_hm(write_hm(tmp_path), start="2020-01-01", end="2020-01-31")
    df = cat.df.set_index("id")
    assert df.loc["0700001000", "sales"] == 2 and df.loc["0700001000", "days_to_first_sale"] == 4
    assert df.loc["0720001002", "sales"] == 1  # the December sale is outside the window
    assert df.loc["0710001001", "sales"] == 0 and not df.loc["0710001001", "sold"]
    assert df["has_image"].sum() == 1 and len(cat) == 6
    with pytest.raises(ValueError, match="empty sales window"):
        load_hm(tmp_path, start="2020-02-01", end="2020-01-01")


def test_listings_fixture(tmp_path):
    write_image(tmp_path / "p" / "a.jpg")
    (tmp_path / "listings.csv").write_text(
        "id,image,title,price,listed_at,sold,days_to_sale\n"
        "a,p/a.jpg,red dress,20,2024-01-02,yes,3\nb,,blue coat,55,2024-02-01,no,\n"
        "c,p/missing.jpg,green top,12,2024-03-05,1,10\n")
    assert detect_layout(tmp_path / "listings.csv") == "listings"
    cat = load_listings(tmp_path / "listings.csv")
    assert cat.df["sold"].tolist() == [True, False, True]
    assert cat.df["has_image"].tolist() == [True, False, False]
    assert str(cat.df["listed_at"].dtype).startswith("datetime64")
    t = resolve_target(cat, "sold")
    assert t.task == "classification" and t.values.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="'days_to_sale' has 1 missing values \\(items b"):
        resolve_target(cat, "days_to_sale")
    (tmp_path / "bad.csv").write_text("id,image,title,sold\na,,x,maybe\n")
    with pytest.raises(ValueError, match="column 'sold': cannot read 'maybe'"):
        load_listings(tmp_path / "bad.csv")


def test_bad_targets_are_named(tmp_path):
    cat = load_sales_catalog(write_visuelle(tmp_path))
    with pytest.raises(ValueError, match="target column 'category' holds non-numeric values"):
        resolve_target(cat, "category")
    cat.df["flag"] = "yes"
    with pytest.raises(ValueError, match="target column 'flag' has a single class"):
        resolve_target(cat, "flag")
    cat.df["const"] = 3.0
    with pytest.raises(ValueError, match="'const' has a single value"):
        resolve_target(cat, "const")
    with pytest.raises(KeyError, match="unknown column 'nope'"):
        resolve_target(cat, "nope")
    with pytest.raises(KeyError, match="unknown feature column"):
        evaluate(cat, resolve_target(cat, "total"), FeatureSpec.parse("colour"), "ridge", *split_catalog(cat))


def test_real_hm_end_to_end(shared_data, tmp_path):
    """The real H&M sample: sales per article over 2020, metadata + photo (100 of 1,000 have one)."""
    cat = load_sales_catalog(shared_data / "hm", start="2020-01-01", end="2020-09-22")
    assert len(cat) == 1000 and cat.df["has_image"].sum() == 100
    target = resolve_target(cat, "sold")
    assert target.task == "classification"
    train, test = split_catalog(cat, test_size=0.3, seed=0)
    res = evaluate(cat, target, FeatureSpec.parse("product_type_name,index_name,price,image"), "lgbm",
                   train, test, cache_dir=tmp_path)
    names = [r["name"] for r in res["rows"]]
    assert names[0] == "mean" and any("metadata-only" in n for n in names)
    final = res["rows"][-1]
    assert 0 <= final["roc_auc"] <= 1 and 0 <= final["accuracy"] <= 1
    assert res["predictions"].shape == (len(test),)


def test_cli_fit_and_compare(tmp_path):
    data = write_visuelle(tmp_path / "vis")
    runner = CliRunner()
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(data), "--target", "total", "--features", "color,category", "--model", "rf",
                            "--hpo", "2", "--out", str(out), "--test-where", "season=SS19,AW19", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    by = {row["name"]: row for row in rows}
    assert by["rf (color,category)"]["wape"] < by["mean"]["wape"]  # colour drives sales in the fixture
    assert {"metrics.json", "predictions.csv", "config.json", "optuna.db"} <= {p.name for p in out.iterdir()}
    manifest = json.loads((out / "config.json").read_text())
    assert manifest["kind"] == "sales" and manifest["config"]["hpo"] == 2 and manifest["config"]["model"] == "rf"
    r = runner.invoke(app, ["compare", str(data), "--target", "total", "--a", "color,image", "--b", "category",
                            "--cache-dir", str(tmp_path / "cache"), "--json", "--n-boot", "500"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {"metric", "a", "b", "diff", "ci95", "p_value", "n_test"} <= set(res)
    assert res["diff"] < 0 and res["ci95"][0] <= res["diff"] <= res["ci95"][1]
    r = runner.invoke(app, ["fit", str(data), "--target", "category", "--features", "color", "--out", str(out)])
    assert r.exit_code == 2 and "target column 'category' holds non-numeric" in r.output
    r = runner.invoke(app, ["compare", str(tmp_path / "nowhere"), "--target", "total", "--a", "color", "--b", "fabric"])
    assert r.exit_code == 2 and "does not exist" in r.output
    with pytest.raises(CatalogError):
        load_visuelle(tmp_path)
