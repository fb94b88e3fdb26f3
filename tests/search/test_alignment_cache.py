"""The trained alignment is cached by its inputs: reused when nothing changed, retrained otherwise."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fashionlens.train.align as align
from fashionlens.catalog.core import Catalog
from fashionlens.encoders.base import Encoder
from fashionlens.search.index import BuildConfig, build_index
from fashionlens.train.config import AlignConfig
from tests.conftest import write_image

KINDS = (("Shirt", (200, 30, 30)), ("Jeans", (30, 30, 200)), ("Cap", (30, 160, 30)))
HERE = "tests.search.test_alignment_cache"


class PixelEncoder(Encoder):
    """Photos only: mean RGB of the top and bottom halves (no model to load, so builds take a second)."""

    name, dim, modalities = f"{HERE}:PixelEncoder", 6, ("image",)

    def _encode_images(self, images):
        return np.stack([np.asarray(im, dtype=np.float32).reshape(2, -1, 3).mean(1).ravel() for im in images])


class WordEncoder(Encoder):
    """Texts only: a hashed bag of words."""

    name, dim, modalities = f"{HERE}:WordEncoder", 16, ("text",)

    def _encode_texts(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % self.dim] += 1
        return out


@pytest.fixture()
def catalog(tmp_path) -> Catalog:
    rows = []
    for i in range(30):
        kind, rgb = KINDS[i % 3]
        path = write_image(tmp_path / "photos" / f"{i}.png", tuple((c + 5 * i) % 256 for c in rgb))
        rows.append({"id": str(i), "image": str(path), "text": f"{kind} number {i}", "articleType": kind})
    return Catalog(pd.DataFrame(rows), tmp_path)


@pytest.fixture()
def trainings(monkeypatch) -> list[int]:
    """Counts calls of train_alignment (still training for real)."""
    calls: list[int] = []
    real = align.train_alignment

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(align, "train_alignment", counted)
    return calls


def _build(catalog, out, cache, progress=False, **align_kw):
    cfg = BuildConfig(encoder=PixelEncoder.name, text_encoder=WordEncoder.name, cache_dir=str(cache),
                      align=AlignConfig(dim=16, hidden=32, epochs=2, batch_size=16, **align_kw))
    return build_index(catalog, out, cfg, progress=progress)


def test_unchanged_rebuild_reuses_the_heads_and_says_so(catalog, tmp_path, trainings, capsys):
    first = _build(catalog, tmp_path / "a", tmp_path / "cache")
    assert len(trainings) == 1 and "reused" not in first.info["alignment"]
    again = _build(catalog, tmp_path / "b", tmp_path / "cache", progress=True)
    assert len(trainings) == 1  # no second training
    assert "alignment: reusing" in capsys.readouterr().err
    assert again.info["alignment"]["reused"].startswith(str(tmp_path / "cache" / "alignments"))
    np.testing.assert_array_equal(again.index.vectors, first.index.vectors)
    assert again.search("blue jeans", k=3) != [] and again.encoder.name == f"run:{tmp_path / 'b' / 'encoder'}"


def test_changed_text_photo_or_config_retrains(catalog, tmp_path, trainings):
    cache = tmp_path / "cache"
    _build(catalog, tmp_path / "a", cache)
    edited = Catalog(catalog.df.assign(text=catalog.df["text"].where(catalog.df["id"] != "7", "Red cap")), catalog.root)
    _build(edited, tmp_path / "b", cache)
    assert len(trainings) == 2
    _build(catalog, tmp_path / "c", cache, supcon_weight=0.5)
    assert len(trainings) == 3
    _build(edited, tmp_path / "d", cache)  # the edited catalog's entry is still there
    assert len(trainings) == 3
    write_image(Path(catalog.images[3]), (1, 2, 3))  # same path and id, new pixels
    _build(catalog, tmp_path / "e", cache)
    assert len(trainings) == 4


def test_a_broken_entry_is_retrained_with_a_warning(catalog, tmp_path, trainings):
    cache = tmp_path / "cache"
    _build(catalog, tmp_path / "a", cache)
    (entry,) = (cache / "alignments").iterdir()
    (entry / "heads.safetensors").write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        _build(catalog, tmp_path / "b", cache)
    assert len(trainings) == 2
    _build(catalog, tmp_path / "c", cache)  # the retrained entry replaced the broken one
    assert len(trainings) == 2
