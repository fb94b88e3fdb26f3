"""Why-similar maps: the region that matches the other photo lights up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.encoders.base import Encoder, Preprocess
from fashionlens.explore.similarity import render_similarity, similarity_maps, why_similar

PP = Preprocess(size=32, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _pixels_as_features(x: torch.Tensor) -> torch.Tensor:
    """A 'network' whose 8x8 feature map is the (normalised) colour of each 4x4 block."""
    return torch.nn.functional.avg_pool2d(x, 4)


def test_matching_region_has_the_highest_cosine() -> None:
    a = np.full((32, 32, 3), 255, dtype=np.uint8)
    a[:, :16] = (255, 0, 0)  # left half red, right half white
    b = Image.new("RGB", (32, 32), (255, 0, 0))  # all red
    m = similarity_maps(_pixels_as_features, Image.fromarray(a), b, PP)
    assert m.map_a.shape == (8, 8)
    assert m.map_a[:, :4].mean() == pytest.approx(1.0, abs=1e-5)  # red cells match red B exactly
    assert m.map_a[:, 4:].max() < 0  # white cells point elsewhere (normalised white = (1, 1, 1))
    # B's cells all match A's pooled colour equally (B is uniform)
    assert np.ptp(m.map_b) < 1e-5 and 0 < m.cosine < 1
    img = render_similarity(m, "red vs half red", size=64)
    assert img.size == (4 * 64 + 30, 64 + 22)


class _NoNet(Encoder):
    name = "no-net"
    dim = 4
    modalities = ("image",)
    preprocess = PP


def test_encoder_without_feature_map_is_refused() -> None:
    with pytest.raises(ValueError, match="no torch feature map"):
        why_similar(_NoNet(), Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)))


def test_why_similar_with_lite0_writes_png(myntra_small, tmp_path: Path) -> None:
    from fashionlens.encoders.registry import create

    enc = create("efficientnet-lite0")
    a, b = myntra_small.images[:2]
    img = why_similar(enc, a, b, out_path=tmp_path / "why.png", title="hit")
    assert Image.open(tmp_path / "why.png").size == img.size == (4 * 224 + 30, 224 + 22)
    # the pooled feature map reproduces the encoder's own cosine (same pooling)
    m = similarity_maps(lambda x: enc.model.forward_features(x), a, b, enc.preprocess)
    e = enc.encode_images([a, b])
    assert m.cosine == pytest.approx(float(e[0] @ e[1]), abs=1e-3)
