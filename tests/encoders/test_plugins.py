"""Users' own encoders: a `module:factory` string and a `fashionlens.encoders` entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashionlens.encoders import Encoder, create, list_encoders, registry


class CharHistogramEncoder(Encoder):
    """A deterministic numpy-only text encoder: letter counts folded into `dim` buckets."""

    modalities = ("text",)

    def __init__(self, dim: int = 8):
        self.name = "char-histogram"
        self.dim = dim

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t.lower():
                out[i, ord(ch) % self.dim] += 1.0
        return out


def char_histogram(dim: int = 8) -> CharHistogramEncoder:
    return CharHistogramEncoder(dim)


def not_an_encoder() -> str:
    return "oops"


def test_module_factory_string_builds_the_users_encoder() -> None:
    enc = create(f"{__name__}:char_histogram", dim=12)
    assert isinstance(enc, CharHistogramEncoder) and enc.dim == 12
    x = enc.encode_texts(["red shirt", "blue jeans"])
    assert x.shape == (2, 12)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)


def test_module_factory_errors_are_clear() -> None:
    with pytest.raises(KeyError, match="cannot import encoder factory"):
        create(f"{__name__}:no_such_factory")
    with pytest.raises(TypeError, match="not a fashionlens Encoder"):
        create(f"{__name__}:not_an_encoder")


@pytest.fixture()
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution (dist-info on sys.path) declaring one encoder entry point."""
    info = tmp_path / "fashionlens_tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fashionlens-tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nchar-histogram = {__name__}:char_histogram\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # a fresh registry scan that sees the new distribution, restored afterwards
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded", False)
    return "char-histogram"


def test_entry_point_encoder_is_listed_and_created(plugin_dist: str) -> None:
    names = [c.name for c in list_encoders()]
    assert plugin_dist in names and "clip-vit-b-32.openai" in names  # plugins add to the zoo
    enc = create(plugin_dist, dim=6)
    assert isinstance(enc, CharHistogramEncoder) and enc.dim == 6
    assert enc.encode_texts(["abc"]).shape == (1, 6)


def test_accepts_reads_the_registered_factorys_keywords() -> None:
    assert registry.accepts("efficientnet-lite0.stages", "size")  # what auto's multisize candidate needs
    assert not registry.accepts("efficientnet-lite0.stages", "no_such_keyword")
    assert not registry.accepts("tests.encoders.test_plugins:make", "size")  # not introspected: not registered
