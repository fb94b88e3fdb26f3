"""A saved aligned run loads each base tower only when it is used (fast `index` and `search` starts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.encoders import create, load_run_encoder
from fashionlens.encoders.aligned import AlignedEncoder, LazyTower
from fashionlens.encoders.nn import ProjectionHead


@pytest.fixture()
def run(tmp_path: Path, tiny_towers: tuple[str, str]) -> tuple[Path, AlignedEncoder]:
    image, text = create(tiny_towers[0]), create(tiny_towers[1])
    torch.manual_seed(0)
    enc = AlignedEncoder(image, text, ProjectionHead(image.dim, 16, 32), ProjectionHead(text.dim, 16, 32),
                         {"dim": 16, "hidden": 32, "head": "mlp", "dropout": 0.1})
    enc.save(tmp_path / "run")
    return tmp_path / "run", enc


def test_towers_load_on_first_use_with_the_same_vectors(run: tuple[Path, AlignedEncoder]) -> None:
    root, eager = run
    lazy = load_run_encoder(root)
    assert isinstance(lazy.image_base, LazyTower) and isinstance(lazy.text_base, LazyTower)
    assert lazy.fingerprint().split("|", 1)[1] == eager.fingerprint().split("|", 1)[1]  # nothing built for it
    assert lazy.image_base._real is None and lazy.text_base._real is None
    np.testing.assert_allclose(lazy.encode_texts(["red shirt"]), eager.encode_texts(["red shirt"]), atol=1e-6)
    assert lazy.text_base._real is not None and lazy.image_base._real is None  # a text query: no image tower
    photo = Image.new("RGB", (60, 80), (200, 30, 30))
    np.testing.assert_allclose(lazy.encode_images([photo]), eager.encode_images([photo]), atol=1e-6)
    assert lazy.preprocess == eager.preprocess and lazy.image_base.model is lazy.image_base.real.model


def test_runs_saved_without_tower_fingerprints_load_eagerly(run: tuple[Path, AlignedEncoder]) -> None:
    root, _ = run
    cfg = json.loads((root / "encoder.json").read_text())
    del cfg["image_fingerprint"], cfg["text_fingerprint"]
    (root / "encoder.json").write_text(json.dumps(cfg))
    enc = load_run_encoder(root)
    assert not isinstance(enc.image_base, LazyTower) and not isinstance(enc.text_base, LazyTower)
