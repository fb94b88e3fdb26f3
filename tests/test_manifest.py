"""One run manifest for every saved folder: what it is, its format version, the config that made it.

Folders saved by the previous code (format_version 1: index.json with "format": 1, categorizer.json
with "format": "fashionlens.categorizer/1", encoder runs with their settings at the top level,
checkpoints with no kind at all) still load; another kind or a newer version is refused clearly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.encoders import create, load_run_encoder
from fashionlens.encoders.aligned import AlignedEncoder, load_aligned
from fashionlens.encoders.nn import PerceptualHead, ProjectionHead
from fashionlens.encoders.perceptual import PerceptualEncoder
from fashionlens.manifest import KINDS, identify, read_manifest, write_manifest
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.engine import FitConfig, fit
from fashionlens.train.runs import RunDir
from fashionlens.utils import MANIFEST, MANIFEST_FORMAT, FolderError, _listing, write_json
from tests.categorize.test_categorizer import make_catalog
from tests.encoders.test_loading_trust import register_toy
from tests.train.test_engine import Regression

RESERVED = ("kind", "format_version", "config")


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    return register_toy(monkeypatch)


def as_previous_layout(path: Path, old: dict) -> None:
    """Rewrite a manifest file as the previous code wrote it; a folder with a file listing gets the
    listing that code wrote too (an edit alone would read as a damaged folder)."""
    path.write_text(json.dumps(old))
    if (path.parent / MANIFEST).is_file():
        write_json(path.parent / MANIFEST, {"format": MANIFEST_FORMAT, "written": time.time(),
                                            "files": _listing(path.parent)})


def rest(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in RESERVED}


# ---- the format -------------------------------------------------------------------------------
def test_a_written_manifest_reads_back_with_kind_version_and_config(tmp_path):
    write_manifest(tmp_path, "sales", {"model": "ridge"}, n_test=4)
    meta = read_manifest(tmp_path, "sales")
    assert meta == {"kind": "sales", "format_version": KINDS["sales"].version, "config": {"model": "ridge"},
                    "n_test": 4}
    assert json.loads((tmp_path / "config.json").read_text()) == meta and identify(tmp_path) == "sales"
    with pytest.raises(ValueError, match="kind"):
        write_manifest(tmp_path, "sales", {}, kind="index")


PREVIOUS = {  # kind: (the file as the previous code wrote it, the config and fields it reads as)
    "index": ({"format": 1, "encoder": "toy", "n_items": 3}, {}, {"encoder": "toy", "n_items": 3}),
    "categorizer": ({"format": "fashionlens.categorizer/1", "config": {"label": "a"}, "classes": ["x"]},
                    {"label": "a"}, {"classes": ["x"]}),
    "aligned": ({"kind": "aligned", "image_encoder": "a", "image_in": 4, "dim": 8, "hidden": 16, "head": "mlp"},
                {"dim": 8, "hidden": 16, "head": "mlp"}, {"image_encoder": "a", "image_in": 4}),
    "finetuned": ({"kind": "finetuned", "image_encoder": "a", "best_epoch": 2, "config": {"dim": 8}},
                  {"dim": 8}, {"image_encoder": "a", "best_epoch": 2}),
    "tuned": ({"kind": "tuned", "base": "b", "unfreeze_blocks": 1, "image_size": 64},
              {"unfreeze_blocks": 1, "image_size": 64}, {"base": "b"}),
    "perceptual": ({"kind": "perceptual", "name": "p", "base": "b", "mode": "mlp", "hidden": 8, "head": False,
                    "in_dim": 4}, {"mode": "mlp", "hidden": 8}, {"name": "p", "base": "b", "head": False, "in_dim": 4}),
    "checkpoint": ({"epoch": 3, "step": 9}, {}, {"epoch": 3, "step": 9}),
    "reranker": ({"config": {"k": 20}, "dim": 8}, {"k": 20}, {"dim": 8}),
}


@pytest.mark.parametrize("kind", sorted(PREVIOUS))
def test_the_previous_layouts_read_as_the_current_shape(kind, tmp_path):
    old, config, fields = PREVIOUS[kind]
    (tmp_path / KINDS[kind].file).write_text(json.dumps(old))
    assert read_manifest(tmp_path, kind) == {"kind": kind, "format_version": 1, "config": config, **fields}
    assert identify(tmp_path) == kind


def test_a_config_json_of_something_else_is_not_taken_for_a_sales_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))  # a Hugging Face model
    assert identify(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="is not a fashionlens index"):
        read_manifest(tmp_path, "index")
    with pytest.raises(FolderError, match="'kind' is None"):
        read_manifest(tmp_path, "sales")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_newer_format_version_is_refused_naming_the_file(kind, tmp_path):
    path = tmp_path / KINDS[kind].file
    path.write_text(json.dumps({"kind": kind, "format_version": KINDS[kind].version + 1, "config": {}}))
    with pytest.raises(FolderError, match=f"{path}: format_version {KINDS[kind].version + 1} is newer"):
        read_manifest(tmp_path, kind)


@pytest.mark.parametrize("content,problem", [
    ("{not json", "unreadable manifest"), ("[1, 2]", "expected a JSON object"),
    ('{"kind": "index", "format_version": "2", "config": {}}', "'format_version' is '2'"),
    ('{"kind": "index", "format_version": 2, "config": []}', "'config' is []"),
    ('{"format": 7}', "unsupported format 7"),
])
def test_a_malformed_manifest_is_refused_naming_the_file_and_the_field(content, problem, tmp_path):
    (tmp_path / "index.json").write_text(content)
    with pytest.raises(FolderError, match=f"{tmp_path / 'index.json'}: .*{problem}".replace("[", r"\[").replace("]", r"\]")):
        read_manifest(tmp_path, "index")


# ---- real folders -----------------------------------------------------------------------------
@pytest.fixture()
def folders(tmp_path: Path, toy: str, emb_cache: str):
    """A real index and a real categorizer of a small catalog (the two-tower toy encoder: no training)."""
    cat = load_catalog(make_catalog(tmp_path / "shop", n_per_class=10))
    idx = build_index(cat, tmp_path / "idx", BuildConfig(encoder=toy, cache_dir=emb_cache), progress=False)
    clf = Categorizer(CategorizeConfig(label="articleType", method="zeroshot", encoder=toy)).fit(cat)
    clf.save(tmp_path / "cat")
    return cat, idx, clf, tmp_path / "idx", tmp_path / "cat"


def test_new_folders_record_kind_version_and_the_config_that_made_them(folders):
    _, _, _, idx_dir, cat_dir = folders
    idx, cat = read_manifest(idx_dir, "index"), read_manifest(cat_dir, "categorizer")
    assert (idx["kind"], idx["format_version"], cat["kind"], cat["format_version"]) == ("index", 2, "categorizer", 2)
    assert BuildConfig.from_dict(idx["config"]).encoder == "toy-colour"
    assert cat["config"]["method"] == "zeroshot" and cat["classes"]


def test_a_folder_of_another_kind_is_refused_saying_what_it_is(folders, tmp_path):
    _, _, _, idx_dir, cat_dir = folders
    with pytest.raises(FolderError, match=f"{cat_dir} is a saved categorizer .*not a fashionlens index"):
        SearchIndex(cat_dir)
    with pytest.raises(FolderError, match=f"{idx_dir} is a fashionlens index .*not a saved categorizer"):
        Categorizer.load(idx_dir)
    with pytest.raises(FolderError, match=f"{cat_dir} is a saved categorizer .*not a trained encoder run"):
        create(f"run:{cat_dir}")
    with pytest.raises(FolderError, match=f"{idx_dir} is a fashionlens index .*not a training checkpoint"):
        read_manifest(idx_dir, "checkpoint")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="is not a fashionlens index: index.json is missing; build one"):
        SearchIndex(empty)


def test_an_index_and_a_categorizer_saved_by_the_previous_code_still_load(folders):
    cat, idx, clf, idx_dir, cat_dir = folders
    hits, proba = idx.search("red shirt", k=4), clf.predict_proba(cat.images)
    meta = read_manifest(idx_dir, "index")
    as_previous_layout(idx_dir / "index.json", {"format": 1, **rest(meta)})
    meta = read_manifest(cat_dir, "categorizer")
    as_previous_layout(cat_dir / "categorizer.json",
                       {"format": "fashionlens.categorizer/1", "config": meta["config"], **rest(meta)})

    old = SearchIndex(idx_dir)
    assert old.info["format_version"] == 1 and old.search("red shirt", k=4) == hits
    np.testing.assert_allclose(Categorizer.load(cat_dir).predict_proba(cat.images), proba, atol=1e-6)
    old.remove([cat.ids[0]])
    old.save()  # a re-saved old folder is written in the current format
    assert read_manifest(idx_dir, "index")["format_version"] == KINDS["index"].version


def test_encoder_runs_saved_by_the_previous_code_still_load(tmp_path, tiny_towers, toy):
    image, text = create(tiny_towers[0]), create(tiny_towers[1])
    torch.manual_seed(0)
    config = {"dim": 16, "hidden": 32, "head": "mlp", "dropout": 0.1}
    aligned = AlignedEncoder(image, text, ProjectionHead(image.dim, 16, 32), ProjectionHead(text.dim, 16, 32), config)
    aligned.save(tmp_path / "aligned")
    head = PerceptualHead(22, 8, 0.0).eval()
    torch.nn.init.normal_(head.mlp[-1].weight, std=0.5)  # not the identity it starts as: loading must matter
    perceptual = PerceptualEncoder([create(toy)], head, {"base": toy, "mode": "mlp", "hidden": 8, "dropout": 0.0})
    perceptual.save(tmp_path / "perceptual")
    texts, photos = ["red shirt", "blue jeans"], [Image.new("RGB", (30, 40), (c, 90, 250 - c)) for c in (40, 200)]
    want = aligned.encode_texts(texts), perceptual.encode_images(photos)
    for root in (tmp_path / "aligned", tmp_path / "perceptual"):
        meta = read_manifest(root, root.name)  # the folders are named after their kinds
        assert meta["format_version"] == 2 and meta["config"]
        # the previous layout: the settings at the top level beside the rest, no version
        as_previous_layout(root / "encoder.json", {"kind": meta["kind"], **rest(meta), **meta["config"]})
        assert read_manifest(root, meta["kind"])["format_version"] == 1
    np.testing.assert_allclose(load_run_encoder(tmp_path / "aligned").encode_texts(texts), want[0], atol=1e-6)
    again = load_run_encoder(tmp_path / "perceptual")
    np.testing.assert_allclose(again.encode_images(photos), want[1], atol=1e-6)
    assert again.config["hidden"] == 8 and again.head is not None
    with pytest.raises(FolderError, match="is a perceptual model run .*not an aligned encoder run"):
        load_aligned(tmp_path / "perceptual")


def test_checkpoints_record_the_engine_config_and_old_ones_resume(tmp_path):
    cfg = FitConfig(epochs=4, lr=0.05, monitor="score", seed=3)
    unbroken = fit(Regression(), cfg, RunDir(tmp_path / "a"))
    state = read_manifest(tmp_path / "a" / "checkpoints" / "last", "checkpoint")
    assert state["config"] == cfg.to_dict() and state["epoch"] == 3

    first = FitConfig(epochs=2, lr=0.05, monitor="score", seed=3)
    fit(Regression(), first, RunDir(tmp_path / "b"))
    for tag in ("last", "best"):  # the previous code's state.json: the state alone
        path = tmp_path / "b" / "checkpoints" / tag / "state.json"
        as_previous_layout(path, rest(read_manifest(path.parent, "checkpoint")))
    res = fit(Regression(), cfg, RunDir(tmp_path / "b"), resume=True)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    assert [h["score"] for h in res.history] == pytest.approx([h["score"] for h in unbroken.history])


def test_a_reranker_saved_by_the_previous_code_still_loads(tmp_path):
    from fashionlens.train.reranker import CrossModalReranker, RerankerConfig

    rng = np.random.default_rng(0)
    q, g = (rng.normal(size=(60, 8)).astype(np.float32) for _ in range(2))
    rr = CrossModalReranker(RerankerConfig(k=5, epochs=1, width=16, layers=1)).fit(q, g)
    rr.save(tmp_path / "rr")
    meta = read_manifest(tmp_path / "rr", "reranker")
    assert meta["config"]["k"] == 5 and meta["format_version"] == 2
    as_previous_layout(tmp_path / "rr" / "reranker.json", {"config": meta["config"], "dim": meta["dim"]})
    np.testing.assert_array_equal(CrossModalReranker.load(tmp_path / "rr").rerank(q, g), rr.rerank(q, g))


def test_a_save_never_replaces_a_folder_of_another_kind(folders, tmp_path):
    from typer.testing import CliRunner

    from fashionlens.cli.main import app
    from fashionlens.sales.run import SalesFitConfig, fit_sales
    from tests.sales.test_data import write_visuelle

    cat, idx, clf, idx_dir, cat_dir = folders
    hits = idx.search("red shirt", k=4)
    with pytest.raises(FolderError, match=f"{idx_dir} is a fashionlens index .*saving a saved categorizer there"):
        clf.save(idx_dir)
    with pytest.raises(FolderError, match=f"{cat_dir} is a saved categorizer .*saving a fashionlens index"):
        build_index(cat, cat_dir, BuildConfig(encoder="toy-colour", cache_dir=None), progress=False)
    r = CliRunner().invoke(app, ["categorize", "train", str(tmp_path / "shop"), "--label", "articleType", "--method", "zeroshot",
                                 "--encoder", "toy-colour", "--out", str(idx_dir)])
    assert r.exit_code == 2 and f"{idx_dir} is a fashionlens index" in r.output, r.output
    sales = SalesFitConfig(catalog=str(write_visuelle(tmp_path / "vis")), target="total", features="color")
    with pytest.raises(FolderError, match=f"{idx_dir} is a fashionlens index .*a sales model run"):
        fit_sales(sales, idx_dir)
    assert SearchIndex(idx_dir).search("red shirt", k=4) == hits  # untouched, and still whole
    np.testing.assert_allclose(Categorizer.load(cat_dir).predict_proba(cat.images), clf.predict_proba(cat.images))
    clf.save(cat_dir)  # the same kind is replaced as before
    fit_sales(sales, tmp_path / "sales")
    fit_sales(sales, tmp_path / "sales")  # and a sales run folder is written again


def test_tuned_and_finetuned_runs_saved_by_the_previous_code_still_load(tmp_path, tiny_towers):
    from fashionlens.encoders.finetuned import FinetunedEncoder
    from fashionlens.encoders.nn import build_dual_encoder
    from fashionlens.encoders.tuned import TunedImageEncoder
    from tests.encoders.test_nn import TinyBert, TinyViT, fast_cfg

    torch.manual_seed(0)
    tuned = TunedImageEncoder(TinyViT(), 1)
    with torch.no_grad():
        for name, p in tuned.tower.model.named_parameters():
            if name in tuned.trainable:
                p.add_(0.1 * torch.randn_like(p))  # away from the base: loading the weights must matter
    tuned.save(tmp_path / "tuned")
    cfg = fast_cfg(image_strategy="partial").to_dict()
    finetuned = FinetunedEncoder(build_dual_encoder(cfg, TinyViT(), TinyBert()), cfg)
    finetuned.save(tmp_path / "finetuned")
    photos = [Image.new("RGB", (40, 40), (c, 60, 200 - c)) for c in (30, 180)]
    want = tuned.encode_images(photos), finetuned.encode_images(photos)
    for root in (tmp_path / "tuned", tmp_path / "finetuned"):
        meta = read_manifest(root, root.name)
        old = {"kind": meta["kind"], **rest(meta)}
        old |= {"config": meta["config"]} if root.name == "finetuned" else meta["config"]  # tuned kept them flat
        as_previous_layout(root / "encoder.json", old)
        assert read_manifest(root, root.name)["format_version"] == 1
    np.testing.assert_allclose(load_run_encoder(tmp_path / "tuned").encode_images(photos), want[0], atol=1e-5)
    np.testing.assert_allclose(load_run_encoder(tmp_path / "finetuned").encode_images(photos), want[1], atol=1e-5)
