"""Categorizer on a toy catalog with a tiny hand-made two-tower encoder (fast, no model download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fashionlens.catalog import ImageError, load_catalog
from fashionlens.categorize.categorizer import CategorizeConfig, Categorizer
from fashionlens.categorize.data import (
    AugmentedEncoder,
    LabelHierarchy,
    cap_per_class,
    class_weights,
    merge_rare,
    oversample,
)
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError

# articleType -> (sub, master, colour name, rgb)
KINDS = {
    "Tshirts": ("Topwear", "Apparel", "red", (200, 40, 40)),
    "Jeans": ("Bottomwear", "Apparel", "blue", (40, 40, 200)),
    "Sneakers": ("Shoes", "Footwear", "green", (40, 190, 40)),
}


class ColourEncoder(Encoder):
    """Image: centred mean colour + colour spread + a fixed random projection of a 4x4 thumbnail.
    Text: the colour word's direction in the mean-colour dims (so zero-shot on colours works)."""

    name = "toy-colour"
    modalities = ("image", "text")
    dim = 22
    _proj = np.random.default_rng(0).normal(size=(48, 16)).astype(np.float32) * 0.05

    def _encode_images(self, images):
        out = []
        for im in images:
            im = im if isinstance(im, Image.Image) else Image.open(im)
            a = np.asarray(im.convert("RGB"), np.float32) / 255
            mean = a.reshape(-1, 3).mean(0)
            thumb = np.asarray(im.convert("RGB").resize((4, 4)), np.float32).reshape(-1) / 255
            out.append(np.r_[mean - mean.mean(), a.reshape(-1, 3).std(0), thumb @ self._proj])
        return np.stack(out)

    def _encode_texts(self, texts):
        dirs = {"red": 0, "green": 1, "blue": 2}
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w, d in dirs.items():
                if w in t.lower():
                    out[i, :3] = -0.5
                    out[i, d] = 1.0
        out[:, 3] += 1e-3  # never an all-zero row
        return out


def make_catalog(root: Path, n_per_class: int = 16, seed: int = 0, extra: dict | None = None) -> Path:
    """Kaggle-layout catalog: noisy photos whose colour and shape follow the article type."""
    rng = np.random.default_rng(seed)
    rows = ["id,masterCategory,subCategory,articleType,baseColour,usage,productDisplayName"]
    kinds = dict(KINDS, **(extra or {}))
    i = 0
    for kind, (sub, master, colour, rgb) in kinds.items():
        for _ in range(n_per_class):
            c = tuple(int(np.clip(v + rng.integers(-60, 60), 0, 255)) for v in rgb)
            im = Image.new("RGB", (60, 80), (255, 255, 255))
            d = ImageDraw.Draw(im)
            x0, y0 = rng.integers(2, 15), rng.integers(2, 20)
            d.rectangle([x0, y0, x0 + rng.integers(25, 40), y0 + rng.integers(30, 55)], fill=c)
            (root / "images").mkdir(parents=True, exist_ok=True)
            im.save(root / "images" / f"{i}.jpg")
            rows.append(f"{i},{master},{sub},{kind},{colour.title()},Casual,{colour} {kind} {i}")
            i += 1
    (root / "styles.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_catalog(make_catalog(tmp_path_factory.mktemp("toy")))


def test_mlp_head_beats_chance_logs_epochs_and_round_trips(toy, tmp_path):
    train, test = toy.split(0.3, seed=0, stratify="articleType")
    cfg = CategorizeConfig(label="articleType", method="head", val_size=0.25,
                           head={"epochs": 30, "patience": 8, "hidden": 32, "batch_size": 8, "lr": 3e-3})
    clf = Categorizer(cfg, encoder=ColourEncoder()).fit(train, log_path=tmp_path / "log.jsonl")
    res = clf.evaluate(test)
    assert res["accuracy"] > 0.6  # chance is 1/3
    assert res["n"] == len(test) and res["labels_unseen"]["n"] == 0
    assert res["levels"]["masterCategory"]["accuracy"] > 0.8  # marginal over article types (chance: 2/3)
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log and {"epoch", "train_loss", "val_macro_f1", "top_confusions"} <= set(log[0])
    named = {c[k] for r in log for c in r["top_confusions"] for k in ("true", "predicted")}
    assert named and named <= set(clf.classes_)  # the log names classes, not column numbers
    best = max(log, key=lambda r: r["val_macro_f1"])
    assert clf.head_.best_epoch_ == min(r["epoch"] for r in log if r["val_macro_f1"] >= best["val_macro_f1"] - 1e-4)

    clf.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "categorizer.json", "fit_ids.json", "head.safetensors", "manifest.json", "train_log.jsonl"]
    again = Categorizer.load(tmp_path / "m", encoder=ColourEncoder())
    np.testing.assert_allclose(again.predict_proba(test), clf.predict_proba(test), atol=1e-6)
    top = again.predict_top(test.images[:2], k=2)
    assert len(top) == 2 and len(top[0]) == 2
    assert isinstance(top[0][0][0], str) and top[0][0][1] >= top[0][1][1]


def test_probe_weights_are_safetensors_not_pickle(toy, tmp_path):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    clf.save(tmp_path)
    from safetensors.numpy import load_file

    w = load_file(str(tmp_path / "head.safetensors"))
    assert w["coef"].shape == (3, ColourEncoder.dim) and w["intercept"].shape == (3,)
    again = Categorizer.load(tmp_path, encoder=ColourEncoder())
    assert again.predict(toy) == clf.predict(toy)
    assert np.mean(np.asarray(clf.predict(toy)) == toy.column("articleType")) > 0.8


def test_zero_shot_prompt_ensemble_on_colours(toy):
    clf = Categorizer(CategorizeConfig(label="baseColour", method="zeroshot", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    assert clf.head_.class_embeddings_.shape == (3, ColourEncoder.dim)
    assert clf.evaluate(toy)["accuracy"] > 0.9


class ArticleWordEncoder(ColourEncoder):
    """Its text tower knows article types (by their colour in the toy catalog), not category names."""

    def _encode_texts(self, texts):
        words = {"tshirts": "red", "jeans": "blue", "sneakers": "green"}
        colours = [" ".join(c for w, c in words.items() if w in t.lower()) for t in texts]
        out = super()._encode_texts(colours)
        out[[not c for c in colours]] = np.r_[np.zeros(3), -np.ones(3), np.zeros(self.dim - 6)]  # unlike any photo
        return out


def test_zero_shot_prompts_a_parent_class_by_its_children(toy, tmp_path):
    """'Apparel' means nothing to this text tower; its article types do (max over a class's names)."""
    cfg = CategorizeConfig(label="masterCategory", method="zeroshot", tta=False)
    bare = Categorizer(CategorizeConfig(**{**cfg.__dict__, "prompt_children": False}),
                       encoder=ArticleWordEncoder()).fit(toy)
    clf = Categorizer(cfg, encoder=ArticleWordEncoder()).fit(toy)
    assert bare.evaluate(toy)["accuracy"] < 0.7  # every class text alike: one class for all
    assert clf.evaluate(toy)["accuracy"] > 0.95
    assert {"tshirts", "jeans", "topwear"} <= set(clf.head_.names_)  # the texts prompted
    clf.save(tmp_path)
    again = Categorizer.load(tmp_path, encoder=ArticleWordEncoder())
    assert again.head_.names_ == clf.head_.names_
    np.testing.assert_allclose(again.predict_proba(toy), clf.predict_proba(toy), atol=1e-6)


def test_zero_shot_takes_the_best_name_of_a_class_not_the_mean():
    from fashionlens.categorize.heads import ZeroShotHead

    e = np.eye(3, dtype=np.float32)
    # class 0: two looks (e0, e1); class 1: one look close to e1
    head = ZeroShotHead(np.stack([e[0], e[1], 0.8 * e[1] + 0.6 * e[2]]), owner=np.array([0, 0, 1]))
    assert head.predict_proba(e[1:2]).argmax() == 0  # the mean of class 0's looks would lose to class 1


def test_zero_shot_user_prompts_replace_names_and_are_checked(toy):
    cfg = CategorizeConfig(label="masterCategory", method="zeroshot", tta=False, prompt_children=False,
                           class_prompts={"Apparel": ["tshirts", "jeans"], "Footwear": ["sneakers"]})
    clf = Categorizer(cfg, encoder=ArticleWordEncoder()).fit(toy)
    assert clf.head_.names_ == ["tshirts", "jeans", "sneakers"]
    assert clf.evaluate(toy)["accuracy"] > 0.95
    with pytest.raises(ValueError, match="not classes of 'masterCategory'"):
        Categorizer(CategorizeConfig(**{**cfg.__dict__, "class_prompts": {"Shoes": ["x"]}}),
                    encoder=ArticleWordEncoder()).fit(toy)


def test_zero_shot_needs_a_text_tower(toy):
    class ImageOnly(ColourEncoder):
        modalities = ("image",)

    with pytest.raises(ValueError, match="image and text towers"):
        Categorizer(CategorizeConfig(label="baseColour", method="zeroshot"), encoder=ImageOnly()).fit(toy)


def test_not_an_image_gives_a_clear_error(toy, tmp_path):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        clf.predict_top([toy.images[0], str(bad)])


def test_unseen_labels_are_counted_not_scored(toy, tmp_path):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    other = load_catalog(make_catalog(tmp_path, 4, seed=3, extra={"Caps": ("Headwear", "Accessories", "red", (250, 0, 0))}))
    res = clf.evaluate(other, report_dir=tmp_path / "report")
    assert res["labels_unseen"] == {"n": 4, "labels": {"Caps": 4}}
    assert res["n"] == len(other) - 4
    # the confusion matrix written to the report counts exactly the model's predictions
    cm = json.loads((tmp_path / "report" / "confusion.json").read_text())
    known = other.subset(np.flatnonzero(other.column("articleType") != "Caps"))
    pred = clf.predict(known)
    for i, t in enumerate(cm["labels"]):
        for j, p in enumerate(cm["labels"]):
            expect = sum(1 for a, b in zip(known.column("articleType"), pred) if a == t and b == p)
            assert cm["matrix"][i][j] == expect
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 0
    assert {"accuracy", "per_class"} <= set(json.loads((tmp_path / "report" / "metrics.json").read_text()))


def test_catalog_qa_lists_confident_disagreements(toy, tmp_path):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    df = toy.df.copy()
    wrong = df.index[df["articleType"] == "Tshirts"][:2]
    df.loc[wrong, "articleType"] = "Jeans"  # two red t-shirts mislabelled as jeans
    from fashionlens.catalog.core import Catalog

    clf.evaluate(Catalog(df, toy.root), report_dir=tmp_path)
    qa = json.loads((tmp_path / "qa.json").read_text())["items"]
    flagged = {it["id"] for it in qa}
    assert set(df.loc[wrong, "id"]) <= flagged
    assert all(it["catalog_label"] != it["predicted"] and it["confidence"] >= 0.8 for it in qa)
    assert (tmp_path / "qa.png").is_file()


def test_rare_classes_merge_into_other_and_are_reported(tmp_path):
    cat = load_catalog(make_catalog(tmp_path, 12, extra={"Caps": ("Headwear", "Accessories", "red", (250, 0, 0))}))
    df = cat.df
    keep = np.flatnonzero((df["articleType"] != "Caps").to_numpy() | (df["id"].astype(int) % 12 < 3).to_numpy())
    cat = cat.subset(keep)  # Caps: 3 items
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False, min_class_size=5,
                                       val_size=0.0), encoder=ColourEncoder()).fit(cat)
    assert clf.merged_ == {"Caps": 3}
    assert "other" in clf.classes_ and "Caps" not in clf.classes_
    assert clf.evaluate(cat)["labels_unseen"]["n"] == 0  # Caps are scored as "other"


def test_balancing_helpers():
    y = np.array(["a"] * 50 + ["b"] * 10 + ["c"] * 3, dtype=object)
    kept = y[cap_per_class(y, 8, seed=1)]
    assert {c: int((kept == c).sum()) for c in "abc"} == {"a": 8, "b": 8, "c": 3}
    merged, rare = merge_rare(y, 5)
    assert rare == {"c": 3} and (merged == "other").sum() == 3
    over = y[oversample(y, target=20)]
    assert {c: int((over == c).sum()) for c in "abc"} == {"a": 50, "b": 20, "c": 20}
    yi = np.array([0] * 50 + [1] * 10 + [2] * 3)
    w = class_weights(yi, 3, power=1.0)
    assert w[2] > w[1] > w[0]
    assert np.allclose(w[0] * 50, w[2] * 3)  # 'balanced': every class weighs the same in total


def test_hierarchy_parent_is_the_majority_co_occurrence():
    import pandas as pd

    df = pd.DataFrame({"masterCategory": ["A", "A", "A", "B"], "subCategory": ["s", "s", "s", "s"],
                       "articleType": ["x", "x", "y", "x"]})
    h = LabelHierarchy.from_frame(df)
    assert h.parents["subCategory"] == {"s": "A"}
    assert h.ancestor("x", "articleType", "masterCategory") == "A"
    assert h.above("articleType") == ["subCategory", "masterCategory"]


def test_predict_levels_sums_children(toy):
    clf = Categorizer(CategorizeConfig(label="articleType", method="probe", tta=False),
                      encoder=ColourEncoder()).fit(toy)
    lv = clf.predict_levels(toy.images[:3], k=3)[0]
    assert set(lv) == {"articleType", "subCategory", "masterCategory"}
    p = dict(lv["articleType"])
    assert dict(lv["masterCategory"])["Apparel"] == pytest.approx(p["Tshirts"] + p["Jeans"], abs=1e-5)


def test_augmented_encoder_is_deterministic_and_changes_pixels(toy):
    enc = ColourEncoder()
    flip, rnd = AugmentedEncoder(enc, "hflip"), AugmentedEncoder(enc, "train", copy=1)
    a, b = rnd.encode_images(toy.images[:4]), rnd.encode_images(toy.images[:4])
    np.testing.assert_allclose(a, b)
    assert not np.allclose(flip.encode_images(toy.images[:4]), enc.encode_images(toy.images[:4]))
    assert flip.fingerprint() != enc.fingerprint() != rnd.fingerprint()


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="unknown method"):
        CategorizeConfig(method="magic")


def test_probe_matches_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from fashionlens.categorize.heads import ProbeHead

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.7, size=300) > 0).astype(int) + (X[:, 2] > 1)
    ours = ProbeHead(C=0.5).fit(X, y)
    Xs = (X - ours.mean_) / ours.scale_
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8).fit(Xs, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(Xs), atol=2e-3)
    # sample weights mean what they mean in scikit-learn (on the same standardised inputs)
    w = rng.uniform(0.2, 3.0, size=300)
    ours = ProbeHead(C=0.5).fit(X, y, sample_weight=w)
    Xs = (X - ours.mean_) / ours.scale_
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8).fit(Xs, y, sample_weight=w)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(Xs), atol=2e-3)


class SizedColourEncoder(ColourEncoder):
    """ColourEncoder on photos first resized to `size` px: a factory argument a saved model must keep."""

    def __init__(self, size: int = 4):
        self.size = size

    def _encode_images(self, images):
        ims = [im if isinstance(im, Image.Image) else Image.open(im) for im in images]
        return super()._encode_images([im.convert("RGB").resize((self.size, self.size)) for im in ims])


@pytest.fixture()
def sized_encoder(monkeypatch):
    """`toy-sized` in the registry for one test: a loaded model rebuilds only registered names."""
    from fashionlens.encoders import list_encoders, registry

    list_encoders()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("toy-sized")(SizedColourEncoder)
    return "toy-sized"


def _edit_config(folder, change) -> None:
    """Change a saved categorizer.json's config in place, as a folder from before manifests would hold."""
    meta = json.loads((folder / "categorizer.json").read_text())
    change(meta["config"])
    (folder / "categorizer.json").write_text(json.dumps(meta))
    (folder / "manifest.json").unlink()  # its file hashes no longer match; a folder without one loads


def test_encoder_kwargs_are_saved_and_rebuild_the_encoder_on_load(toy, tmp_path, sized_encoder):
    with pytest.raises(InvalidInputError, match="encoder_kwargs must be a mapping"):
        CategorizeConfig(encoder_kwargs=224)
    clf = Categorizer(CategorizeConfig(label="articleType", encoder=sized_encoder, method="probe", tta=False,
                                       encoder_kwargs={"size": 8})).fit(toy)
    assert clf.encoder.size == 8
    clf.save(tmp_path / "m")
    again = Categorizer.load(tmp_path / "m")  # no encoder given: rebuilt from the saved name + arguments
    assert again.encoder.size == 8 and again.config.encoder_kwargs == {"size": 8}
    np.testing.assert_allclose(again.predict_proba(toy), clf.predict_proba(toy), atol=1e-6)

    # a folder saved before the field existed built the encoder with the factory's defaults
    _edit_config(tmp_path / "m", lambda c: c.pop("encoder_kwargs"))
    assert Categorizer.load(tmp_path / "m").encoder.size == 4


def test_encoder_kwargs_from_a_saved_folder_must_be_data(toy, tmp_path, sized_encoder):
    clf = Categorizer(CategorizeConfig(label="articleType", encoder=sized_encoder, method="probe", tta=False,
                                       encoder_kwargs={"size": 8})).fit(toy)
    clf.save(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update(encoder_kwargs={"colour": 3}))  # not a factory argument
    with pytest.raises(Exception, match="bad arguments for 'toy-sized'"):
        _ = Categorizer.load(tmp_path / "m").encoder  # built on first use
