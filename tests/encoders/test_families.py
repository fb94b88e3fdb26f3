"""Every backbone family, built tiny and random in code, saved, and loaded through the same
`create(name, weights=DIR)` call users make with a hub id; then the Encoder contract is checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.encoders import create
from fashionlens.encoders.tiny import BUILDERS, build_tiny

pytest.importorskip("torch")

TEXTS = ["red cotton shirt", "blue jeans for men", "black formal shoes", "white dress with a bag",
         "green kurta"]
# one name per checkpoint layout and loader path gets the full contract check ...
FAMILIES = ["clip-vit-b-32.openai", "marqo-fashionsiglip", "fashion-clip", "dino-vits16",
            "dinov2-vits14", "dinov3-vits16", "bert-base-uncased", "blip-base", "git-base",
            "resnet50.tv-in1k"]
# ... and its siblings (same loader, another hub id) are checked to be wired to it
SIBLINGS = sorted(set(BUILDERS) - set(FAMILIES))


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)) for _ in range(5)]


# tiny models on a shared 2-core box: a second intra-op thread only waits (80x slower here)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("tiny")
    return {name: build_tiny(name, root) for name in BUILDERS}


def _create(name: str, tiny: dict[str, dict[str, Any]], **kw: Any):
    return create(name, device="cpu", **tiny[name], **kw)


def test_every_hub_backed_name_has_a_tiny_checkpoint() -> None:
    from fashionlens.encoders import list_encoders

    hub_backed = {c.name for c in list_encoders() if c.extra.get("hub_files")}
    assert hub_backed == set(BUILDERS)
    with pytest.raises(KeyError, match="no tiny builder"):
        build_tiny("efficientnet-lite0", ".")


@pytest.mark.parametrize("name", FAMILIES)
def test_family_loads_and_honours_the_encoder_contract(name: str, tiny: dict[str, dict[str, Any]]) -> None:
    enc = _create(name, tiny, batch_size=5)
    card = enc.card()
    assert card.dim == enc.dim > 0 and card.modalities == enc.modalities
    assert card.source and card.licence and card.pooling
    if "image" in enc.modalities:
        assert enc.preprocess is not None and enc.preprocess.size == 32  # read from the checkpoint
        imgs = _images()
        a = enc.encode_images(imgs)
        assert a.shape == (5, enc.dim) and a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(enc.encode_images(imgs, batch_size=2), a, atol=1e-5)  # batch invariance
        np.testing.assert_array_equal(enc.encode_images(imgs), a)  # determinism
        assert np.abs(a[0] - a[1]).max() > 1e-4  # different images, different vectors
    if "text" in enc.modalities:
        t = enc.encode_texts(TEXTS)
        assert t.shape == (5, enc.dim) and t.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
        # batch of 1 vs 5: padding lengths differ, the embeddings must not
        np.testing.assert_allclose(enc.encode_texts(TEXTS, batch_size=1), t, atol=1e-5)
        np.testing.assert_array_equal(enc.encode_texts(TEXTS), t)
        assert np.abs(t[0] - t[1]).max() > 1e-4
    if enc.modalities == ("image", "text"):
        sims = enc.encode_images(_images()[:2]) @ enc.encode_texts(TEXTS[:3]).T  # one space
        assert sims.shape == (2, 3) and np.all(np.abs(sims) <= 1.0 + 1e-5)


@pytest.mark.parametrize("name", SIBLINGS)
def test_sibling_names_load_through_their_family(name: str, tiny: dict[str, dict[str, Any]]) -> None:
    enc = _create(name, tiny)
    assert enc.name == name and enc.card().name == name and enc.card().extra["hub_files"]
    x = enc.encode_images(_images()[:1])
    assert x.shape == (1, enc.dim) and np.isclose(np.linalg.norm(x), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["blip-base", "git-base"])
def test_captioners_return_one_string_per_image(name: str, tiny: dict[str, dict[str, Any]]) -> None:
    enc = _create(name, tiny)
    caps = enc.caption(_images()[:3], max_new_tokens=4)
    assert len(caps) == 3 and all(isinstance(c, str) for c in caps)
    assert max(len(c.split()) for c in caps) <= 4  # max_new_tokens honoured (word pieces merge)
    assert enc.caption(_images()[:3], max_new_tokens=4) == caps


def test_captioner_loads_on_its_own(tiny: dict[str, dict[str, Any]]) -> None:
    from fashionlens.encoders.captioning import load_captioner

    cap = load_captioner("git-base", **tiny["git-base"], device="cpu")
    assert cap.caption(_images()[:2], max_new_tokens=3) == _create("git-base", tiny).caption(
        _images()[:2], max_new_tokens=3)
    with pytest.raises(KeyError, match="unknown captioner"):
        load_captioner("nope")


def test_crop_resize_changes_pixels_not_shapes(tiny: dict[str, dict[str, Any]]) -> None:
    pad = _create("dino-vits16", tiny)
    crop = _create("dino-vits16", tiny, resize="crop")
    assert crop.preprocess.resize == "crop" and pad.preprocess.resize == "pad"
    a, b = pad.encode_images(_images()[:2]), crop.encode_images(_images()[:2])
    assert a.shape == b.shape and not np.allclose(a, b)


def test_open_clip_checkpoint_file_is_accepted(tiny: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    import open_clip

    from fashionlens.encoders.clip import load_open_clip

    d = tiny["clip-vit-b-32.openai"]["weights"]
    # a bare checkpoint file needs an architecture open_clip knows: register the tiny one
    cfg = json.loads((d / "open_clip_config.json").read_text())["model_cfg"]
    (tmp_path / "tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "tiny-clip.json")
    enc = load_open_clip("tiny", "tiny-clip", weights=d / "open_clip_model.safetensors", device="cpu")
    ref = create("clip-vit-b-32.openai", weights=d, device="cpu")
    np.testing.assert_allclose(enc.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=1e-6)


def test_real_catalog_photos_by_path_match_opened_images(myntra_dir: Path, tiny: dict[str, dict[str, Any]],
                                                         tmp_path: Path) -> None:
    from fashionlens.catalog.images import ImageError

    paths = sorted((myntra_dir / "images").glob("*.jpg"))[:4]
    enc = _create("dinov2-vits14", tiny)
    by_path = enc.encode_images(paths)
    np.testing.assert_allclose(by_path, enc.encode_images([Image.open(p) for p in paths]), atol=1e-6)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        enc.encode_images([paths[0], broken])


def test_local_weights_enter_the_fingerprint(tiny: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    a, b = _create("dino-vits16", tiny), _create("dino-vits16", tiny)
    assert a.fingerprint() == b.fingerprint() and str(tiny["dino-vits16"]["weights"]) in a.fingerprint()
    other = create("dino-vits16", device="cpu", **build_tiny("dino-vits16", tmp_path, seed=1))
    assert other.name == a.name and other.fingerprint() != a.fingerprint()  # caches must not mix them
    from fashionlens.encoders.hf_vision import HFVisionEncoder
    from fashionlens.encoders.loading import with_source

    for hub_source in ("", "facebook/dinov2-small"):  # hub ids are pinned by the name alone
        assert with_source(HFVisionEncoder.__new__(HFVisionEncoder), hub_source).weights_id == ""


def test_half_precision_is_for_gpus_only(tiny: dict[str, dict[str, Any]]) -> None:
    enc = _create("dinov2-vits14", tiny, precision="fp16")
    assert enc.device.type == "cpu" and enc.amp_dtype is None  # fp16 on CPU: slow, so never
    np.testing.assert_array_equal(enc.encode_images(_images()[:2]),
                                  _create("dinov2-vits14", tiny).encode_images(_images()[:2]))
