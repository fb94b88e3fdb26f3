"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def tiny_towers(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """TinyViT / TinyBert registered as `tiny-vit` / `tiny-bert` for one test: a saved run names its
    towers, and loading a run builds only registered names (a folder never imports code)."""
    from fashionlens.encoders import list_encoders, registry
    from tests.train.test_strategies import TinyBert, TinyViT

    list_encoders()  # the families register into the real registry first, so restoring it loses none
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("tiny-vit")(TinyViT)
    registry.register("tiny-bert")(TinyBert)
    return "tiny-vit", "tiny-bert"
