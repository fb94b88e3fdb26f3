"""Shared fixtures: the real data beside the repo, tiny catalogs written in the test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("FASHIONLENS_PROGRESS", "0")
# One embedding cache for the whole session (set before fashionlens.embed is imported): tests that
# embed the same real photos share the work; the user's own cache is never touched.
os.environ["FASHIONLENS_CACHE"] = tempfile.mkdtemp(prefix="fashionlens-test-cache-")

SHARED = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared/data is missing (expected at {SHARED}); CI lays it beside the clone")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one torch thread than on two on a shared 2-core box."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def emb_cache() -> str:
    """The session-wide embedding cache directory."""
    return os.environ["FASHIONLENS_CACHE"]


@pytest.fixture(scope="session")
def myntra_dir(shared_data: Path) -> Path:
    return shared_data / "myntra"


@pytest.fixture(scope="session")
def myntra_small(myntra_dir: Path):
    """A fixed 400-item sample of the real Myntra catalog (validated)."""
    from fashionlens.catalog import load_catalog

    return load_catalog(myntra_dir, check_images=False).sample(400, seed=0)


def write_image(path: Path, color=(200, 30, 30), size=(60, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture()
def tiny_kaggle(tmp_path: Path) -> Path:
    """A 12-item Kaggle-layout catalog of solid-colour photos with two article types."""
    rng = np.random.default_rng(0)
    rows = ["id,masterCategory,subCategory,articleType,baseColour,usage,productDisplayName"]
    for i in range(12):
        kind = "Tshirts" if i % 2 else "Shoes"
        colour = ("Red", (220, 20, 20)) if i % 3 else ("Blue", (20, 20, 220))
        jitter = tuple(int(c + rng.integers(-10, 10)) % 256 for c in colour[1])
        write_image(tmp_path / "images" / f"{i}.jpg", jitter)
        rows.append(f"{i},Apparel,Topwear,{kind},{colour[0]},Casual,{colour[0]} {kind} number {i}")
    (tmp_path / "styles.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.fixture()
def tiny_towers(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """TinyViT / TinyBert registered as `tiny-vit` / `tiny-bert` for one test: a saved run names its
    towers, and loading a run builds only registered names (a folder never imports code)."""
    from fashionlens.encoders import list_encoders, registry
    from tests.encoders.test_nn import TinyBert, TinyViT

    list_encoders()  # the families register into the real registry first, so restoring it loses none
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("tiny-vit")(TinyViT)
    registry.register("tiny-bert")(TinyBert)
    return "tiny-vit", "tiny-bert"
