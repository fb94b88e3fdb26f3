"""A fused image encoder (e.g. Lite0 + colour histogram) decodes each photo once for all its parts."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

import fashionlens.embed.runner as runner
from fashionlens.catalog.images import open_image
from fashionlens.embed import embed_images
from fashionlens.encoders.base import Encoder, Preprocess
from fashionlens.encoders.colour import ColourHistogramEncoder, FusedImageEncoder
from fashionlens.encoders.pixels import fit_image
from tests.conftest import write_image


class SizedMean(Encoder):
    """Mean RGB of the photo fitted to 24 px: checks that each part gets its own fitted copy."""

    name, dim, modalities = "sized-mean", 3, ("image",)
    preprocess = Preprocess(size=24)

    def prepare_image(self, img):
        return fit_image(img, self.preprocess)

    def _encode_images(self, images: list) -> np.ndarray:
        ims = [i if not isinstance(i, (str, Path)) else self.prepare_image(open_image(i)) for i in images]
        assert all(i.size == (24, 24) for i in ims)
        return np.stack([np.asarray(i, np.float32).mean((0, 1)) for i in ims]) + 1.0


def _photos(tmp_path: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [str(write_image(tmp_path / f"{i}.jpg", tuple(int(c) for c in rng.integers(0, 255, 3)), size=(60, 80)))
            for i in range(n)]


def _counting(monkeypatch) -> list[str]:
    seen: list[str] = []

    def counted(src, *a, **kw):
        seen.append(str(src))
        return open_image(src, *a, **kw)

    monkeypatch.setattr(runner, "open_image", counted)
    return seen


def test_each_photo_is_decoded_once_and_the_parts_match_their_own_path(tmp_path, monkeypatch):
    paths = _photos(tmp_path, 40)
    hist, mean = ColourHistogramEncoder(), SizedMean()
    # the parts alone, each decoding the photo itself (the path before the shared decode)
    alone = [hist.encode_images(paths), mean.encode_images(paths)]
    fused = FusedImageEncoder("fused", [hist, mean], [1.0, 1.0])
    seen = _counting(monkeypatch)
    got = embed_images(fused, paths, tmp_path / "cache", progress=False)
    assert sorted(seen) == sorted(paths)  # one decode per photo, not one per part
    np.testing.assert_array_equal(got, fused.combine(alone))  # the same histogram bit for bit
    # each part was cached under its own fingerprint, reusable alone
    np.testing.assert_array_equal(embed_images(hist, paths, tmp_path / "cache", progress=False), alone[0])


def test_a_part_cached_alone_is_not_recomputed(tmp_path, monkeypatch):
    paths = _photos(tmp_path, 30)
    hist, mean = ColourHistogramEncoder(), SizedMean()
    cache = tmp_path / "cache"
    embed_images(hist, paths[:20], cache, progress=False)  # the histogram of the first 20 cached

    calls: list[int] = []
    real = hist._encode_images
    monkeypatch.setattr(hist, "_encode_images", lambda ims: calls.append(len(ims)) or real(ims))
    seen = _counting(monkeypatch)
    fused = FusedImageEncoder("fused", [hist, mean], [1.0, 1.0])
    got = embed_images(fused, paths, cache, progress=False)
    assert sum(calls) == 10 and sorted(seen) == sorted(paths)  # the mean needed every photo decoded
    np.testing.assert_array_equal(got, fused.combine([hist.encode_images(paths), mean.encode_images(paths)]))


def test_a_bad_photo_is_reported_once_and_left_out_of_every_part(tmp_path):
    paths = _photos(tmp_path, 12)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    paths[5] = str(tmp_path / "bad.jpg")
    fused = FusedImageEncoder("fused", [ColourHistogramEncoder(), SizedMean()], [1.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = embed_images(fused, paths, tmp_path / "cache", progress=False)
    msgs = [str(w.message) for w in caught if w.category is UserWarning]
    assert msgs == [f"item {paths[5]}: {paths[5]}: not an image (content is not a known image format) — skipped (not embedded)"]
    assert not got[5].any() and np.all(np.linalg.norm(np.delete(got, 5, 0), axis=1) > 0.99)
