"""Catalog layouts as users have them: format detection, VISUELLE, H&M, symlinks, encodings, bad rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from fashionlens.catalog import CatalogError, CatalogWarning, load_catalog
from fashionlens.catalog.formats import detect_format
from tests.conftest import write_image

HEADER = "id,masterCategory,articleType,productDisplayName"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_detection_by_the_files_present(shared_data):
    assert detect_format(shared_data / "myntra") == "kaggle"
    assert detect_format(shared_data / "visuelle") == "visuelle"
    assert detect_format(shared_data / "visuelle" / "sales.csv") == "visuelle"
    assert detect_format(shared_data / "hm") == "hm"
    assert detect_format(shared_data / "material-triplets" / "triplets.csv") == "table"
    assert detect_format(shared_data / "material-triplets" / "images") == "folder"


def test_real_visuelle_loads_with_codes_texts_and_sales(shared_data):
    rows = _rows(shared_data / "visuelle" / "sales.csv")
    cat = load_catalog(shared_data / "visuelle", check_images=False)
    assert cat.report.format == "visuelle" and cat.report.n_skipped == 0
    assert cat.ids == [r["external_code"] for r in rows]
    first = cat.item(rows[0]["external_code"])
    assert first.text == f"{rows[0]['color']} {rows[0]['fabric']} {rows[0]['category']}"
    assert Path(first.image) == shared_data / "visuelle" / rows[0]["image_path"]
    assert {"season", "category", "color", "fabric"} <= set(cat.attributes)
    weeks = [f"week_{k}" for k in range(12)]
    assert set(weeks) <= set(cat.attributes)
    assert [first.attributes[w] for w in weeks] == [float(rows[0][str(k)]) for k in range(12)]


def test_real_hm_loads_article_ids_and_reports_items_without_photo(shared_data):
    root = shared_data / "hm"
    rows = {r["article_id"]: r for r in _rows(root / "articles.csv")}
    with_photo = {p.stem for p in (root / "images").rglob("*.jpg")}
    cat = load_catalog(root, check_images=False)
    assert cat.report.format == "hm"
    assert set(cat.ids) == with_photo and all(len(i) == 10 and i.isdigit() for i in cat.ids)
    assert cat.report.n_read == len(rows) and cat.report.n_skipped == len(rows) - len(with_photo)
    skipped = {i.item_id: i.reason for i in cat.report.issues}
    assert set(skipped) == set(rows) - with_photo
    assert all("not found" in r for r in skipped.values())
    for item in cat:
        r = rows[item.id]
        assert item.text.startswith(r["prod_name"]) and item.text.endswith(r["detail_desc"])
        assert item.attributes["product_type_name"] == r["product_type_name"]
        assert item.attributes["colour_group_name"] == r["colour_group_name"]


def test_format_override_and_unknown_format(shared_data):
    cat = load_catalog(shared_data / "visuelle", format="folder", check_images=False)
    assert cat.report.format == "folder" and all(i.startswith("images") for i in cat.ids)
    with pytest.raises(CatalogError, match="unknown catalog format 'hnm'.*kaggle"):
        load_catalog(shared_data / "hm", format="hnm")
    with pytest.raises(CatalogError, match="--id-col.*table"):
        load_catalog(shared_data / "myntra", id_col="sku")


def _outside_photos(tmp_path: Path) -> Path:
    """Photos in a folder beside the catalog (what a symlink points at)."""
    out = tmp_path / "elsewhere"
    write_image(out / "1.jpg")
    write_image(out / "2.jpg", (20, 20, 220))
    return out


def test_symlinked_images_folder_loads(tmp_path):
    out = _outside_photos(tmp_path)
    root = tmp_path / "cat"
    root.mkdir()
    (root / "images").symlink_to(out, target_is_directory=True)
    (root / "styles.csv").write_text(f"{HEADER}\n1,Apparel,Tshirts,Red tee\n2,Apparel,Tshirts,Blue tee\n")
    cat = load_catalog(root)
    assert cat.ids == ["1", "2"] and cat.report.n_skipped == 0
    assert cat.images == [str(root / "images" / "1.jpg"), str(root / "images" / "2.jpg")]


def test_per_file_symlinks_load_in_tables_and_label_folders(tmp_path):
    out = _outside_photos(tmp_path)
    root = tmp_path / "cat"
    (root / "pics").mkdir(parents=True)
    for n in ("1", "2"):
        (root / "pics" / f"{n}.jpg").symlink_to(out / f"{n}.jpg")
    (root / "items.csv").write_text("id,image,text\na,pics/1.jpg,red\nb,pics/2.jpg,blue\n")
    assert load_catalog(root / "items.csv").ids == ["a", "b"]
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "boots").symlink_to(out, target_is_directory=True)  # a label folder that is a link
    (out / "loop").symlink_to(out, target_is_directory=True)  # a link cycle is walked once
    cat = load_catalog(folder)
    assert cat.ids == ["boots/1", "boots/2"] and set(cat.column("label")) == {"boots"}


def test_paths_written_in_the_table_that_leave_the_root_are_rejected(tmp_path):
    out = _outside_photos(tmp_path)
    root = tmp_path / "cat"
    root.mkdir()
    (root / "images").symlink_to(out, target_is_directory=True)
    write_image(tmp_path / "secret.jpg")
    (root / "items.csv").write_text(
        "id,image,text\n"
        "ok,images/1.jpg,linked folder\n"
        "up,../secret.jpg,dot dot\n"
        f"abs,{tmp_path / 'secret.jpg'},absolute\n"
        "via,images/../secret.jpg,dot dot after a link\n")
    cat = load_catalog(root / "items.csv")
    assert cat.ids == ["ok"]
    reasons = {i.item_id: i.reason for i in cat.report.issues}
    assert set(reasons) == {"up", "abs", "via"}
    assert all("escapes the catalog root" in r for r in reasons.values())


def _styles(root: Path, text: str, encoding: str) -> Path:
    for i in (1, 2):
        write_image(root / "images" / f"{i}.jpg")
    (root / "styles.csv").write_bytes(text.encode(encoding))
    return root


def test_styles_with_a_bom_loads(tmp_path):
    root = _styles(tmp_path, f"\ufeff{HEADER}\n1,Apparel,Tshirts,Café tee\n2,Apparel,Tshirts,Blue tee\n", "utf-8")
    cat = load_catalog(root)
    assert cat.ids == ["1", "2"] and cat.texts == ["Café tee", "Blue tee"]
    assert cat.report.encoding == "utf-8-sig"


def test_latin1_styles_loads_with_correct_names_and_a_warning(tmp_path):
    text = f"{HEADER}\n1,Apparel,Tshirts,Crème brûlée tee\n2,Apparel,Tshirts,Men’s blue tee\n"
    root = _styles(tmp_path, text, "cp1252")
    with pytest.warns(CatalogWarning, match=r"styles\.csv.*not UTF-8.*line 2.*cp1252"):
        cat = load_catalog(root)
    assert cat.texts == ["Crème brûlée tee", "Men’s blue tee"]
    assert cat.report.encoding == "cp1252" and "cp1252" in cat.report.warnings[0]
    assert cat.report.to_dict()["encoding"] == "cp1252"


def test_utf16_table_from_excel_loads(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "items.tsv").write_bytes("id\timage\ttext\nA\ta.jpg\tBlouse à pois\n".encode("utf-16"))
    cat = load_catalog(tmp_path / "items.tsv")
    assert cat.ids == ["A"] and cat.texts == ["Blouse à pois"] and cat.report.encoding == "utf-16"


def test_decode_error_names_the_file_and_line(tmp_path):
    root = _styles(tmp_path, f"{HEADER}\n1,Apparel,Tshirts,Plain tee\n2,Apparel,Tshirts,Crème tee\n", "latin-1")
    with pytest.raises(CatalogError, match=r"styles\.csv line 3: not valid utf-8"):
        load_catalog(root, encoding="utf-8")


def test_table_parse_error_names_the_file(tmp_path):
    (tmp_path / "items.csv").write_text('id,image,text\na,a.jpg,ok\nb,b.jpg,"unclosed\n')
    with pytest.raises(CatalogError, match=r"items\.csv"):
        load_catalog(tmp_path / "items.csv")


def test_missing_ids_are_bad_rows(tmp_path):
    for n in "abc":
        write_image(tmp_path / f"{n}.jpg")
    (tmp_path / "items.csv").write_text("id,image,text\nx,a.jpg,first\n,b.jpg,second\n,c.jpg,third\n")
    cat = load_catalog(tmp_path / "items.csv")
    assert cat.ids == ["x"]
    assert [(i.item_id, i.reason) for i in cat.report.issues] == [("row 2", "missing id"), ("row 3", "missing id")]


def test_kaggle_table_without_names_warns(tmp_path):
    write_image(tmp_path / "images" / "1.jpg")
    (tmp_path / "styles.csv").write_text("id,masterCategory\n1,Apparel\n")
    with pytest.warns(CatalogWarning, match="no 'productDisplayName' column.*text is empty"):
        cat = load_catalog(tmp_path)
    assert cat.texts == [""] and "productDisplayName" in cat.report.warnings[0]


def test_missing_photo_reported_without_decoding(tmp_path):
    write_image(tmp_path / "images" / "1.jpg")
    (tmp_path / "styles.csv").write_text(f"{HEADER}\n1,Apparel,Tshirts,Red tee\n2,Apparel,Tshirts,Gone\n")
    cat = load_catalog(tmp_path, check_images=False)
    assert cat.ids == ["1"] and [i.item_id for i in cat.report.issues] == ["2"]
    assert os.path.isfile(cat.images[0])
