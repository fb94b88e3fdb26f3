"""A small real search index (200 Myntra items, efficientnet-lite0 + minilm-l6 aligned), built once,
and a served app with a stand-in categorizer and captioner."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (245, 245, 245),
           "black": (10, 10, 10), "yellow": (240, 220, 20)}


class ColourCategorizer:
    """Stand-in with the real Categorizer's interface: labels = colour names, probabilities from the
    photo's mean colour (so a test can tell a right answer from a wrong one)."""

    class config:  # noqa: N801 -- mirrors Categorizer.config.label
        label = "colour"
        method = "stand-in"

    classes_ = list(COLOURS)

    def __init__(self):
        self.calls = 0

    def predict_top(self, images, k=5):
        self.calls += len(images)
        ref = np.array(list(COLOURS.values()), np.float32)
        out = []
        for im in images:
            mean = np.asarray(im.convert("RGB"), np.float32).reshape(-1, 3).mean(0)
            logits = -np.linalg.norm(ref - mean, axis=1) / 20
            p = np.exp(logits - logits.max())
            p /= p.sum()
            order = np.argsort(-p)[:k]
            out.append([(self.classes_[j], float(p[j])) for j in order])
        return out


class ColourCaptioner:
    def caption(self, images):
        cat = ColourCategorizer()
        return [f"a {top[0][0]} product" for top in cat.predict_top(images, k=1)]


def photo_bytes(fmt: str = "JPEG", colour=(220, 30, 30), size=(60, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def app_catalog(myntra_small):
    return myntra_small.subset(range(200))


@pytest.fixture(scope="session")
def app_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app_cache")


@pytest.fixture(scope="session")
def small_index_dir(app_catalog, app_cache, tmp_path_factory) -> Path:
    from fashionlens.search.index import BuildConfig, build_index
    from fashionlens.train.config import AlignConfig

    out = tmp_path_factory.mktemp("app_index") / "myntra200"
    build_index(app_catalog, out, BuildConfig(cache_dir=str(app_cache), align=AlignConfig(epochs=4)), progress=False)
    return out


@pytest.fixture(scope="session")
def stand_in():
    return ColourCategorizer()


@pytest.fixture(scope="session")
def app(small_index_dir, stand_in):
    from fashionlens.app.server import create_app

    return create_app([small_index_dir], categorizers={"colour": stand_in}, captioner=ColourCaptioner(),
                      max_bytes=1024 * 1024, max_pixels=4_000_000)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
