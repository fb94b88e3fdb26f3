from pathlib import Path

import pytest

from fashionlens.catalog import CatalogError, StrictImportError, load_catalog, open_image
from fashionlens.catalog.images import ImageError
from tests.conftest import write_image


def _bad_catalog(root: Path) -> Path:
    """Kaggle layout with one good item and one of each defect."""
    imgs = root / "images"
    write_image(imgs / "1.jpg")
    write_image(imgs / "2.jpg")
    good = (imgs / "1.jpg").read_bytes()
    (imgs / "3.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (imgs / "4.jpg").write_bytes(b"")  # zero bytes
    (imgs / "5.jpg").write_text("this is not a picture")  # text named .jpg
    (imgs / "6.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)  # corrupt JPEG header
    # 7: missing file; 8: empty name; 1 again: duplicate id
    rows = [
        "id,masterCategory,subCategory,articleType,baseColour,usage,productDisplayName",
        "1,Apparel,Topwear,Tshirts,Red,Casual,Red tee",
        "2,Apparel,Topwear,Tshirts,Red,Casual,Another red tee",
        "3,Apparel,Topwear,Tshirts,Red,Casual,Truncated",
        "4,Apparel,Topwear,Tshirts,Red,Casual,Zero bytes",
        "5,Apparel,Topwear,Tshirts,Red,Casual,Text file",
        "6,Apparel,Topwear,Tshirts,Red,Casual,Corrupt",
        "7,Apparel,Topwear,Tshirts,Red,Casual,Missing",
        "8,Apparel,Topwear,Tshirts,Red,Casual,",
        "1,Apparel,Topwear,Tshirts,Red,Casual,Duplicate",
    ]
    (root / "styles.csv").write_text("\n".join(rows) + "\n")
    return root


def test_bad_items_are_reported_and_skipped(tmp_path):
    cat = load_catalog(_bad_catalog(tmp_path))
    assert cat.ids == ["1", "2"]
    reasons = {i.item_id: i.reason for i in cat.report.issues}
    assert set(reasons) == {"3", "4", "5", "6", "7", "8", "1"}
    assert "truncated" in reasons["3"] or "corrupt" in reasons["3"]
    assert "zero-byte" in reasons["4"]
    assert "not an image" in reasons["5"]
    assert "not found" in reasons["7"]
    assert "empty text" in reasons["8"]
    assert "duplicate" in reasons["1"]
    assert "skipped 7" in cat.report.summary()


def test_strict_fails_on_first_bad_item(tmp_path):
    with pytest.raises(StrictImportError, match="item 3"):
        load_catalog(_bad_catalog(tmp_path), strict=True)


def test_table_with_column_mapping_and_escaping_path(tmp_path):
    write_image(tmp_path / "pics" / "a.png")
    write_image(tmp_path.parent / "outside.png")
    (tmp_path / "items.csv").write_text("sku,photo,title,colour\nA,pics/a.png,Blue shirt,Blue\nB,../outside.png,Sneaky,Red\n")
    cat = load_catalog(tmp_path / "items.csv", id_col="sku", image_col="photo", text_col="title")
    assert cat.ids == ["A"] and cat.texts == ["Blue shirt"] and cat.attributes == ["colour"]
    assert "escapes the catalog root" in cat.report.issues[0].reason


def test_table_unknown_column_names_the_flag(tmp_path):
    (tmp_path / "items.csv").write_text("sku,photo\nA,a.png\n")
    with pytest.raises(CatalogError, match="--id-col"):
        load_catalog(tmp_path / "items.csv")


def test_folder_of_labelled_images(tmp_path):
    write_image(tmp_path / "boots" / "a.jpg")
    write_image(tmp_path / "dresses" / "b.jpg")
    cat = load_catalog(tmp_path)
    assert sorted(cat.column("label")) == ["boots", "dresses"]


def test_missing_and_empty_catalogs(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")
    (tmp_path / "styles.csv").write_text("id,productDisplayName\n")
    with pytest.raises(CatalogError, match="empty"):
        load_catalog(tmp_path)


def test_full_kaggle_rows_with_commas_in_the_name(tmp_path):
    write_image(tmp_path / "images" / "1.jpg")
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
    (tmp_path / "styles.csv").write_text(f"{header}\n1,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,Shirt, blue, slim\n")
    cat = load_catalog(tmp_path)
    assert cat.texts == ["Shirt, blue, slim"]
    assert cat.item("1").attributes["gender"] == "Men"


def test_real_myntra_catalog_imports(myntra_dir):
    cat = load_catalog(myntra_dir, limit=200)
    assert len(cat) == 200 and cat.report.n_skipped == 0
    assert {"masterCategory", "articleType", "baseColour"} <= set(cat.attributes)


def test_open_image_guards(tmp_path):
    with pytest.raises(ImageError, match="empty"):
        open_image(b"")
    big = tmp_path / "big.png"
    write_image(big, size=(300, 300))
    with pytest.raises(ImageError, match="exceeds"):
        open_image(big, max_pixels=1000)


def test_split_is_seeded_and_disjoint(myntra_small):
    a, b = myntra_small.split(100, seed=3, stratify="masterCategory")
    a2, b2 = myntra_small.split(100, seed=3, stratify="masterCategory")
    assert a.ids == a2.ids and len(b) == 100 and not set(a.ids) & set(b.ids)
