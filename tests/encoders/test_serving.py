"""`Encoder.for_serving`: the offline MiniLM text tower in ONNX Runtime gives the torch vectors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fashionlens.encoders import create

pytest.importorskip("onnxruntime")

TEXTS = ["red shirt", "Nike Men Black Running Shoes with a very long product name for padding tests",
         "kurta", "Fossil women rose gold dial watch", ""]


@pytest.fixture(scope="module")
def minilm():
    return create("minilm-l6")


def test_onnx_text_tower_matches_torch(minilm):
    fast = minilm.for_serving()
    assert type(fast).__name__ == "OnnxSentenceEncoder" and fast.fingerprint() == minilm.fingerprint()
    want = minilm.encode_texts(TEXTS)
    np.testing.assert_allclose(fast.encode_texts(TEXTS), want, atol=1e-5)  # one padded batch
    for i, t in enumerate(TEXTS):  # and one at a time, as a server sees them
        np.testing.assert_allclose(fast.encode_texts([t]), want[i : i + 1], atol=1e-5)
    assert fast.encode_texts([]).shape == (0, minilm.dim)


def test_without_onnxruntime_the_torch_encoder_serves(minilm, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    assert minilm.for_serving() is minilm


def test_aligned_encoder_serves_with_the_fast_text_tower(minilm):
    import torch

    from fashionlens.encoders.aligned import AlignedEncoder
    from fashionlens.train.align import ProjectionHead

    image = create("efficientnet-lite0")
    torch.manual_seed(0)
    enc = AlignedEncoder(image, minilm, ProjectionHead(image.dim, 32), ProjectionHead(minilm.dim, 32), {"dim": 32})
    fast = enc.for_serving()
    assert fast.text_base is not minilm and fast.image_base is image and fast.fingerprint() == enc.fingerprint()
    np.testing.assert_allclose(fast.encode_texts(TEXTS[:3]), enc.encode_texts(TEXTS[:3]), atol=1e-5)
