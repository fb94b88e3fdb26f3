"""Whole-catalog retrieval evaluation: training photos are distractors, never hits; name duplicates count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashionlens.catalog.core import Catalog
from fashionlens.catalog.images import open_image
from fashionlens.encoders.base import Encoder
from fashionlens.search.evaluate import evaluate_retrieval
from tests.conftest import write_image

WORDS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


class ColourEncoder(Encoder):
    """A photo is its mean RGB; a name is the RGB of the colour word it contains."""

    name, dim, modalities = "colour-test", 3, ("image", "text")

    def _encode_images(self, images):
        return np.stack([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) for im in images])

    def _encode_texts(self, texts):
        return np.array([next(v for w, v in WORDS.items() if w in t.lower()) for t in texts], dtype=np.float32)


def _catalog(tmp_path, rows) -> Catalog:
    recs = []
    for item_id, text, rgb, kind, colour in rows:
        recs.append({"id": item_id, "image": str(write_image(tmp_path / f"{item_id}.png", rgb)), "text": text,
                     "articleType": kind, "baseColour": colour})
    return Catalog(pd.DataFrame(recs), tmp_path)


@pytest.fixture()
def held_out(tmp_path):
    return _catalog(tmp_path, [
        ("h-red", "Red Shirt", (200, 40, 40), "Shirts", "Red"),
        ("h-blue1", "Blue  Jeans", (30, 30, 200), "Jeans", "Blue"),
        ("h-blue2", "blue jeans", (0, 0, 255), "Jeans", "Blue"),  # same name, normalised
        ("h-green", "Green Cap", (40, 200, 40), "Caps", "Green"),
    ])


@pytest.fixture()
def training(tmp_path):
    # the pure-red training photo, with the very same name, is the red query's nearest photo
    return _catalog(tmp_path, [
        ("t-red", "red shirt", (255, 0, 0), "Shirts", "Red"),
        ("t-grey", "Grey Socks", (128, 128, 128), "Socks", "Grey"),
    ])


def test_training_photo_nearest_is_a_distractor_not_a_hit(held_out, training):
    alone = evaluate_retrieval(ColourEncoder(), held_out, cache_dir=None, progress=False, return_ranks=True)
    whole = evaluate_retrieval(ColourEncoder(), held_out, cache_dir=None, progress=False, return_ranks=True,
                               gallery=training)
    assert alone["text_to_image"]["ranks"].tolist() == [0, 0, 0, 0]
    ranks = whole["text_to_image"]["ranks"].tolist()
    assert ranks == [1, 0, 0, 0]  # red: the training photo ranks first and is not counted
    t2i = whole["text_to_image"]
    assert t2i["recall@1"] == pytest.approx(3 / 4) and t2i["recall@5"] == 1.0
    assert t2i["mrr"] == pytest.approx((1 / 2 + 3) / 4)
    assert whole["gallery"] == {"size": 6, "n_distractors": 2, "n_queries": 4}
    assert t2i["gallery_size"] == 6


def test_name_duplicates_count_as_hits(held_out):
    res = evaluate_retrieval(ColourEncoder(), held_out, cache_dir=None, progress=False, return_ranks=True)
    # "Blue  Jeans" ranks the other item's pure-blue photo above its own: still a hit at rank 0,
    # and both relevant photos fill the top 2, so NDCG@10 is 1 for both blue queries
    assert res["text_to_image"]["ranks"][1] == 0
    assert res["text_to_image"]["ndcg@10"] == pytest.approx(1.0)


def test_cis_contain_the_values_and_chance_is_reported(held_out, training):
    res = evaluate_retrieval(ColourEncoder(), held_out, cache_dir=None, progress=False, gallery=training)
    for task in ("text_to_image", "image_to_image"):
        d = res[task]
        assert set(d["ci95"]) == set(d["chance"]) and d["ci95"]
        for m, (lo, hi) in d["ci95"].items():
            assert lo <= d[m] <= hi, (task, m)
    t2i = res["text_to_image"]
    # one relevant of 6 for red and green, two for the blue pair
    assert t2i["chance"]["recall@1"] == pytest.approx((1 / 6 + 2 / 6 + 2 / 6 + 1 / 6) / 4)
    assert t2i["chance@10"] == 1.0


def test_image_to_image_over_the_whole_gallery_reference(held_out, training):
    res = evaluate_retrieval(ColourEncoder(), held_out, cache_dir=None, progress=False, gallery=training)
    i2i = res["image_to_image"]
    k = 5  # 6 photos, self excluded
    # brute force: every held-out photo's 5 nearest others among all 6 photos
    vec = np.array([[200, 40, 40], [30, 30, 200], [0, 0, 255], [40, 200, 40], [255, 0, 0], [128, 128, 128]], float)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    types = np.array(["Shirts", "Jeans", "Jeans", "Caps", "Shirts", "Socks"])
    prec = []
    for i in range(4):
        s = vec @ vec[i]
        s[i] = -np.inf
        prec.append(np.mean(types[np.argsort(-s)[:k]] == types[i]))
    assert i2i[f"precision@{k}_articleType"] == pytest.approx(np.mean(prec))
    assert i2i["chance"][f"precision@{k}_articleType"] == pytest.approx(np.mean([1, 1, 1, 0]) / 5)


def test_vector_gallery_equals_catalog_gallery_and_overlapping_ids_are_dropped(held_out, training):
    enc = ColourEncoder()
    by_cat = evaluate_retrieval(enc, held_out, cache_dir=None, progress=False, gallery=training)
    vecs = enc.encode_images([open_image(p) for p in training.images])
    by_vec = evaluate_retrieval(enc, held_out, cache_dir=None, progress=False, gallery=vecs)
    assert {m: by_vec["text_to_image"][m] for m in ("recall@1", "mrr")} == \
        {m: by_cat["text_to_image"][m] for m in ("recall@1", "mrr")}
    assert by_vec["image_to_image"] == {}  # no labels for bare vectors
    both = Catalog(pd.concat([training.df, held_out.df]), training.root)
    again = evaluate_retrieval(enc, held_out, cache_dir=None, progress=False, gallery=both)
    assert again["gallery"]["n_distractors"] == 2 and again["text_to_image"]["recall@1"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="another encoder"):
        evaluate_retrieval(enc, held_out, cache_dir=None, progress=False, gallery=np.ones((3, 5), np.float32))
