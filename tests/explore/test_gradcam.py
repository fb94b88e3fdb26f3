"""Grad-CAM on CNN and ViT heads (timm ViT, open_clip visual tower in both token layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.encoders.base import Preprocess
from fashionlens.explore import gradcam as gc

PP = Preprocess(size=64, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _images(n: int = 2) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)) for _ in range(n)]


def test_token_reshape_puts_each_patch_in_its_cell() -> None:
    b, h, w, c = 2, 3, 4, 5
    patches = torch.arange(b * h * w, dtype=torch.float32).reshape(b, h * w, 1).expand(b, h * w, c)
    tokens = torch.cat([torch.full((b, 1, c), -1.0), patches], dim=1)  # class token first
    out = gc.token_reshape_transform(1, (h, w))(tokens)
    assert out.shape == (b, c, h, w)
    assert out[1, 0, 2, 3] == patches[1, 2 * w + 3, 0]  # row-major patch order
    seq_first = gc.token_reshape_transform(1, (h, w), seq_first=True)((tokens.transpose(0, 1),))  # tuple output
    assert torch.equal(seq_first, out)
    with pytest.raises(ValueError, match="patch tokens"):
        gc.token_reshape_transform(2, (h, w))(tokens)


def test_gradcam_timm_vit() -> None:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=64, num_classes=3).eval()
    cams, rgb = gc.compute_cams(model, model.blocks[-1].norm1, _images(), 1, PP,
                                reshape_transform=gc.timm_vit_reshape_transform(model))
    assert cams.shape == (2, 64, 64) and rgb.shape == (2, 64, 64, 3)
    assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1 and cams.std() > 0


@pytest.mark.parametrize("batch_first", [True, False])
def test_gradcam_open_clip_visual_tower(batch_first: bool) -> None:
    from open_clip.transformer import Transformer, VisionTransformer

    torch.manual_seed(0)
    visual = VisionTransformer(image_size=64, patch_size=16, width=32, layers=2, heads=2, mlp_ratio=2.0, output_dim=16)
    if not batch_first:  # the OpenAI-CLIP token layout (sequence, batch, channels)
        visual.transformer = Transformer(32, 2, 2, mlp_ratio=2.0, batch_first=False)
    head = gc.embedding_head(visual, np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32), np.zeros(4))
    transform = gc.clip_vit_reshape_transform(visual)
    cams, _ = gc.compute_cams(head, visual.transformer.resblocks[-1].ln_1, _images(), [0, 3], PP,
                              reshape_transform=transform)
    assert cams.shape == (2, 64, 64) and np.isfinite(cams).all() and cams.std() > 0


def test_linear_head_reproduces_logistic_regression() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    for y in (np.array(["a", "b", "c"])[rng.integers(0, 3, 90)], np.array(["x", "y"])[rng.integers(0, 2, 90)]):
        head, classes, clf = gc.fit_linear_head(torch.nn.Identity(), X, y)
        with torch.no_grad():
            prob = torch.softmax(head(torch.from_numpy(X)), dim=1).numpy()
        np.testing.assert_allclose(prob, clf.predict_proba(X), atol=1e-4)
        assert classes == list(clf.classes_)
    with pytest.raises(ValueError, match="two classes"):
        gc.fit_linear_head(torch.nn.Identity(), X, ["a"] * 90)


def test_categorization_head_on_lite0_looks_at_the_product(myntra_small, tmp_path: Path, tmp_path_factory) -> None:
    """A masterCategory head on efficientnet-lite0: beats the majority class, and its Grad-CAM mass
    sits on the product more than a map spread evenly over the frame would."""
    from fashionlens.embed import embed_images
    from fashionlens.encoders.registry import create

    enc = create("efficientnet-lite0")
    cat = myntra_small.subset(np.arange(100))  # the same items as the report tests: one shared cache
    X = embed_images(enc, cat, cache_dir=tmp_path_factory.getbasetemp() / "explore_cache", progress=False)
    y = cat.df["masterCategory"].astype(str).to_numpy()
    head, classes, clf = gc.fit_linear_head(enc.model, X[:75], y[:75])
    acc = (clf.predict(X[75:]) == y[75:]).mean()
    majority = max((y[75:] == c).mean() for c in set(y[:75]))
    assert acc > majority
    assert gc.last_conv_layer(enc.model) is enc.model.bn2
    pred = [classes.index(p) for p in clf.predict(X[75:83])]
    cams, rgb = gc.compute_cams(head, enc.model.bn2, cat.images[75:83], pred, enc.preprocess)
    masks = gc.product_masks(rgb)
    assert gc.cam_mass_inside(cams, masks).mean() > masks.mean()
    paths = gc.save_gradcam(head, enc.model.bn2, cat.images[75:77], pred[:2], tmp_path / "cams", enc.preprocess)
    assert [Image.open(p).size for p in paths] == [(2 * 160, 160)] * 2
