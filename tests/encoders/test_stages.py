"""`efficientnet-lite0.stages`: pooled parts of several Lite0 depths, through the same ONNX path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionlens.encoders import create
from fashionlens.encoders.stages import DIM, NAME

pytest.importorskip("onnxruntime")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FASHIONLENS_CACHE", str(tmp_path))
    return tmp_path / "onnx"


def test_stages_hold_the_default_vector_and_more(cache: Path, myntra_small) -> None:
    paths = myntra_small.images[:4]
    enc = create(NAME)
    v = enc.encode_images(paths)
    assert v.shape == (4, DIM) and enc.dim == DIM
    assert isinstance(enc._onnx, tuple), "auto ran torch, not ONNX Runtime"
    np.testing.assert_allclose(v, create(NAME, runtime="torch").encode_images(paths), atol=1e-5)
    # ten L2-normalised parts: the first is the plain Lite0 vector (mean of the final map), up to scale
    parts = np.split(v, np.cumsum([1280, 1280, 80, 80, 112, 112, 192, 192, 320]), axis=1)
    np.testing.assert_allclose([np.linalg.norm(p, axis=1) for p in parts], 1 / np.sqrt(len(parts)), atol=1e-5)
    base = create("efficientnet-lite0").encode_images(paths)
    np.testing.assert_allclose(parts[0] * np.sqrt(len(parts)), base, atol=1e-5)
    assert enc.fingerprint() != create("efficientnet-lite0").fingerprint()  # caches never mix the two
    assert any(p.name.startswith(f"{NAME}-") for p in cache.iterdir())  # its own export beside Lite0's
