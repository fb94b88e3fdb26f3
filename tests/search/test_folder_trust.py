"""Index and categorizer folders never run code, and the run: paths they record work from any cwd."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionlens.catalog import load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.encoders import create
from fashionlens.encoders.registry import UntrustedReferenceError
from fashionlens.search.index import BuildConfig, SearchIndex, build_index
from fashionlens.train.align import AlignConfig
from tests.categorize.test_categorizer import make_catalog
from tests.encoders.test_loading_trust import Payload, assert_refused, register_toy, write_run


@pytest.fixture()
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> str:
    return register_toy(monkeypatch)


@pytest.fixture()
def payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Payload:
    return Payload(tmp_path, monkeypatch)


def _poison(path: Path, **fields) -> None:
    meta = json.loads(path.read_text())
    for dotted, value in fields.items():
        d = meta
        *parents, last = dotted.split("__")
        for p in parents:
            d = d[p]
        d[last] = value
    path.write_text(json.dumps(meta))
    # an attacker's folder carries no manifest (or one of its own): loading must refuse the code anyway
    for parent in path.parents[:3]:
        (parent / "manifest.json").unlink(missing_ok=True)


@pytest.fixture()
def index_dir(tiny_kaggle: Path, toy_registered: str, tmp_path: Path, emb_cache: str) -> Path:
    """A real index of the tiny catalog built with the (two-tower) registered toy encoder."""
    build_index(load_catalog(tiny_kaggle), tmp_path / "idx", BuildConfig(encoder=toy_registered, cache_dir=emb_cache),
                progress=False)
    return tmp_path / "idx"


def test_an_index_naming_code_is_refused_on_search_similar_and_serve(index_dir, payload, tmp_path):
    from typer.testing import CliRunner

    from fashionlens.app.server import create_app
    from fashionlens.cli.main import app

    meta = index_dir / "index.json"
    _poison(meta, encoder=payload.factory)
    with pytest.raises(UntrustedReferenceError) as err:
        SearchIndex(index_dir).search("red shirt")
    assert_refused(err, meta, "encoder")
    with pytest.raises(UntrustedReferenceError):
        SearchIndex(index_dir).similar(image=str(next((tmp_path / "images").iterdir())))
    with pytest.raises(UntrustedReferenceError):
        create_app([index_dir])  # warm-up loads the encoder before any request
    res = CliRunner().invoke(app, ["search", str(index_dir), "red shirt"])
    assert res.exit_code == 2 and str(meta) in res.output and "'encoder'" in res.output, res.output
    payload.assert_not_run()
    # nested: the index names a run whose encoder.json runs a shell command
    evil = write_run(tmp_path / "evil", "perceptual", payload.shell)
    _poison(meta, encoder="run:../evil")
    with pytest.raises(UntrustedReferenceError) as err:
        SearchIndex(index_dir).search("red shirt")
    payload.assert_not_run()
    assert_refused(err, evil / "encoder.json", "base")


def test_an_index_built_with_users_code_loads_when_the_user_passes_it(tiny_kaggle, tmp_path, emb_cache):
    name = "tests.categorize.test_categorizer:ColourEncoder"
    built = build_index(load_catalog(tiny_kaggle), tmp_path / "idx", BuildConfig(encoder=name, cache_dir=emb_cache),
                        progress=False)
    expected = built.search("red shirt", k=3)
    with pytest.raises(UntrustedReferenceError, match="Pass such an encoder explicitly"):
        SearchIndex(tmp_path / "idx").search("red shirt", k=3)
    assert SearchIndex(tmp_path / "idx", encoder=create(name)).search("red shirt", k=3) == expected


class _Captions:
    def caption(self, images):
        return ["a red shirt"] * len(images)


@pytest.mark.parametrize("method,field", [("probe", "encoder"), ("caption", "encoder"), ("caption", "text_encoder")])
def test_a_categorizer_naming_code_is_refused(method, field, tiny_kaggle, toy_registered, payload, tmp_path):
    cat = load_catalog(tiny_kaggle)
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", encoder=toy_registered, tta=False))
    clf.fit(cat).save(tmp_path / "cat")
    meta = tmp_path / "cat" / "categorizer.json"
    _poison(meta, config__method=method, **{f"config__{field}": payload.factory})
    # the caption model itself handed in: the text tower then comes from the file
    captioner = _Captions() if field == "text_encoder" else None
    loaded = Categorizer.load(tmp_path / "cat", captioner=captioner)
    with pytest.raises(UntrustedReferenceError) as err:
        loaded.predict(cat.images[:2])
    payload.assert_not_run()
    assert_refused(err, meta, f"config.{field}")


def test_a_finetuned_categorizer_backbone_naming_code_is_refused(tiny_kaggle, toy_registered, payload, tmp_path):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", encoder=toy_registered, tta=False))
    clf.fit(load_catalog(tiny_kaggle)).save(tmp_path / "cat")
    _poison(tmp_path / "cat" / "categorizer.json", config__method="finetune")
    backbone = write_run(tmp_path / "cat" / "backbone", "tuned", {"base": payload.factory})
    with pytest.raises(UntrustedReferenceError) as err:
        Categorizer.load(tmp_path / "cat")
    payload.assert_not_run()
    assert_refused(err, backbone / "encoder.json", "base")


def test_relative_runs_recorded_in_runs_indexes_and_categorizers_work_from_another_cwd(
        toy_registered, tmp_path, monkeypatch):
    from fashionlens.encoders.perceptual import PerceptualEncoder

    monkeypatch.chdir(tmp_path)
    cat = load_catalog(make_catalog(tmp_path / "shop", n_per_class=8))  # alignment needs 20 items
    # runs/b is a perceptual run over run runs/a, named relative to the working directory
    PerceptualEncoder([create(toy_registered)], None, {"base": toy_registered, "mode": "mlp"}).save("runs/a")
    PerceptualEncoder([create("run:runs/a")], None, {"base": "run:runs/a", "mode": "mlp"}).save("runs/b")
    idx = build_index(cat, "idx", BuildConfig(encoder="run:runs/b", text_encoder=toy_registered, cache_dir=None,
                                              align=AlignConfig(epochs=2, batch_size=8, val_fraction=0.25)),
                      progress=False)
    clf = Categorizer(CategorizeConfig(label="articleType", method="zeroshot", encoder="run:idx/encoder"))
    clf.fit(cat).save("cat")
    hits, proba = idx.search("red shirt", k=4), clf.predict_proba(cat.images)
    # recorded relative to the folder that records them
    assert json.loads(Path("runs/b/encoder.json").read_text())["base"] == "run:../a"
    assert json.loads(Path("idx/encoder/encoder.json").read_text())["image_encoder"] == "run:../../runs/b"
    assert json.loads(Path("cat/categorizer.json").read_text())["config"]["encoder"] == "run:../idx/encoder"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert SearchIndex(tmp_path / "idx").search("red shirt", k=4) == hits
    again = Categorizer.load(tmp_path / "cat")
    np.testing.assert_allclose(again.predict_proba(cat.images), proba, atol=1e-6)
    again.save(tmp_path / "cat2")  # re-saved from elsewhere: still names the same run
    np.testing.assert_allclose(Categorizer.load(tmp_path / "cat2").predict_proba(cat.images), proba, atol=1e-6)

    # folders written before: a working-dir-relative path still loads from that directory
    monkeypatch.chdir(tmp_path)
    _poison(tmp_path / "cat" / "categorizer.json", config__encoder="run:idx/encoder")
    np.testing.assert_allclose(Categorizer.load("cat").predict_proba(cat.images), proba, atol=1e-6)
