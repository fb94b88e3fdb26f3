"""A photo that fails to decode: reported on every run, never cached, left out by `embed_catalog_images`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from fashionlens.catalog import Catalog
from fashionlens.embed import EmbeddingStore, decoded, embed_catalog_images, embed_images
from fashionlens.utils import file_hash
from tests.conftest import write_image
from tests.embed.test_store import MeanColour


@pytest.fixture()
def photos(tmp_path):
    paths = [str(write_image(tmp_path / "img" / f"{i}.png", (20 * i, 100, 200 - 10 * i), (8, 8))) for i in range(6)]
    (tmp_path / "img" / "3.png").write_bytes(b"\x00 not a png")
    return paths


def _embed_warned(enc, photos, cache):
    with pytest.warns(UserWarning, match=r"3\.png: not an image.*skipped") as rec:
        vec = embed_images(enc, photos, cache_dir=cache, chunk_size=4, progress=False)
    return vec, [str(w.message) for w in rec if w.category is UserWarning]


def test_failure_is_reported_on_every_run_and_never_cached(tmp_path, photos):
    cache = tmp_path / "cache"
    enc = MeanColour()
    first, msgs = _embed_warned(enc, photos, cache)
    assert enc.seen == 5 and len(msgs) == 1
    assert not first[3].any() and decoded(first).tolist() == [True, True, True, False, True, True]
    store = EmbeddingStore(cache, enc.fingerprint(), "image")
    assert len(store) == 5 and f"{photos[3]}:{file_hash(photos[3])}" not in store

    again, msgs = _embed_warned(enc, photos, cache)  # the cache holds the good ones only
    assert enc.seen == 5 and len(msgs) == 1
    np.testing.assert_array_equal(again, first)


def test_a_zero_vector_an_older_version_cached_is_not_trusted(tmp_path, photos):
    cache = tmp_path / "cache"
    enc = MeanColour()
    store = EmbeddingStore(cache, enc.fingerprint(), "image")
    keys = [f"{p}:{file_hash(p)}" for p in photos]
    store.put(keys[:2], np.zeros((2, enc.dim), np.float32))  # what a failed decode used to leave behind
    with pytest.warns(UserWarning, match=r"3\.png"):
        vec = embed_images(enc, photos, cache_dir=cache, progress=False)
    assert enc.seen == 5  # photos 0 and 1 were embedded again
    assert decoded(vec[:2]).all()
    np.testing.assert_allclose(vec[:2], embed_images(MeanColour(), photos[:2], cache_dir=None, progress=False))


def test_projected_encoders_keep_failed_rows_zero(tmp_path, photos):
    class Projected(MeanColour):
        name = "projected"
        image_base = MeanColour()

        def project_images(self, features):
            return features + 1.0  # a head with a bias: a zero input does not stay zero

    with pytest.warns(UserWarning, match=r"3\.png"):
        vec = embed_images(Projected(), photos, cache_dir=None, progress=False)
    assert decoded(vec).tolist() == [True, True, True, False, True, True]


def test_embed_catalog_images_leaves_the_item_out_and_reports_why(tmp_path, photos):
    df = pd.DataFrame({"id": [f"p{i}" for i in range(6)], "image": photos, "text": [f"item {i}" for i in range(6)]})
    cat = Catalog(df, tmp_path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        kept, vec = embed_catalog_images(MeanColour(), cat, cache_dir=tmp_path / "c", progress=False)
    assert kept.ids == ["p0", "p1", "p2", "p4", "p5"] and len(vec) == 5 and decoded(vec).all()
    issues = kept.report.to_dict()["issues"]
    assert issues == [{"id": "p3", "reason": issues[0]["reason"]}] and "not an image" in issues[0]["reason"]
    assert cat.report.n_skipped == 0  # the caller's catalog is left as it was
