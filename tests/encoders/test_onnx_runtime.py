"""The image tower in ONNX Runtime: same vectors as torch, cached exports, int8, torch fallback."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.encoders import create
from fashionlens.encoders import onnx_runtime as ox
from fashionlens.encoders.base import Preprocess
from fashionlens.encoders.efficientnet import EfficientNetLiteEncoder

pytest.importorskip("onnxruntime")

PP = Preprocess(size=48, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def photos(n: int, seed: int = 0) -> list[Image.Image]:
    """Garment-ish photos: a coloured block on white, 60x80 like the Myntra set."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = np.full((80, 60, 3), 255, np.uint8)
        x, y = rng.integers(0, 30), rng.integers(0, 40)
        a[y : y + 40, x : x + 30] = rng.integers(0, 256, 3)
        a = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(a))
    return out


def tiny(runtime: str = "auto", seed: int = 0) -> EfficientNetLiteEncoder:
    """A 1M-parameter TF-style MobileNetV3 ("same" padding, like the Lite family) behind the Lite encoder."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model("tf_mobilenetv3_small_minimal_100", pretrained=False, num_classes=0)
    enc = EfficientNetLiteEncoder("tiny-tf-mnv3", model, PP, device="cpu", runtime=runtime)
    enc.dim = model.num_features
    return enc


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FASHIONLENS_CACHE", str(tmp_path))
    return tmp_path / "onnx"


def test_onnx_tower_matches_torch_and_is_exported_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ims = photos(5)
    fast, slow = tiny("auto"), tiny("torch")
    got, want = fast.encode_images(ims), slow.encode_images(ims)
    assert isinstance(fast._onnx, tuple), "auto ran torch, not ONNX Runtime"
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(fast.encode_images(ims[:1]), want[:1], atol=1e-5)  # a batch of one
    assert fast.fingerprint() == slow.fingerprint()  # equal vectors share the embedding cache
    assert len(list(cache.glob("*.onnx"))) == 1

    monkeypatch.setattr(ox, "export", lambda *a, **k: pytest.fail("exported again despite the cache"))
    again = tiny("auto")
    np.testing.assert_allclose(again.encode_images(ims), want, atol=1e-5)


def test_changed_weights_are_exported_again(cache: Path) -> None:
    import torch

    ims = photos(4)
    fast = tiny("onnx")
    before = fast.encode_images(ims)
    with torch.no_grad():  # as a fine-tuning step or a LoRA merge would
        for p in fast.model.parameters():
            p.mul_(0.9).add_(0.01)
    fast.model.eval()
    after = fast.encode_images(ims)
    ref = tiny("torch")
    ref.model = fast.model
    np.testing.assert_allclose(after, ref.encode_images(ims), atol=1e-5)
    assert not np.allclose(before, after, atol=1e-3)
    assert len(list(cache.glob("*.onnx"))) == 2


def test_static_padding_keeps_the_features() -> None:
    import torch
    from timm.layers import Conv2dSame

    enc = tiny("torch")
    fixed = ox.static_padding(enc.model, PP.size)
    assert not any(isinstance(m, Conv2dSame) for m in fixed.modules())
    assert any(isinstance(m, Conv2dSame) for m in enc.model.modules())  # the original is untouched
    x = torch.randn(3, 3, PP.size, PP.size)
    with torch.inference_mode():
        torch.testing.assert_close(fixed(x), enc.model(x), atol=1e-5, rtol=1e-5)


def test_int8_has_its_own_fingerprint_and_cache(cache: Path) -> None:
    ims = photos(40, seed=1)
    fp32, int8 = tiny("onnx"), tiny("onnx-int8")
    assert int8.fingerprint() != fp32.fingerprint()
    a, b = fp32.encode_images(ims), int8.encode_images(ims)
    files = sorted(p.name for p in cache.glob("*.onnx"))
    assert len(files) == 2 and sum(".int8-" in f for f in files) == 1
    cos = (a * b).sum(1)
    assert cos.min() > 0.9 and not np.allclose(a, b, atol=1e-4)  # close, but really quantized
    # a later process reuses the calibrated model: one photo is enough then
    np.testing.assert_allclose(tiny("onnx-int8").encode_images(ims[:1]), b[:1], atol=1e-5)


def test_int8_without_enough_calibration_photos_says_so(cache: Path) -> None:
    with pytest.raises(ValueError, match=r"calibrated on the first >= 32 photos"):
        tiny("onnx-int8").encode_images(photos(3))


def test_registered_int8_name() -> None:
    enc = create("efficientnet-lite0.int8")
    assert enc.runtime == "onnx-int8" and enc.name == "efficientnet-lite0.int8"
    assert enc.fingerprint() != create("efficientnet-lite0").fingerprint()


def test_missing_runtime_falls_back_to_torch_with_a_note(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    ims = photos(3)
    enc = tiny("auto")
    with pytest.warns(RuntimeWarning, match="onnxruntime is not installed.*running in torch"):
        got = enc.encode_images(ims)
    np.testing.assert_allclose(got, tiny("torch").encode_images(ims), atol=1e-6)
    assert enc._onnx is False and not cache.exists()
    with pytest.raises(ImportError, match="runtime 'onnx' needs onnxruntime"):
        tiny("onnx").encode_images(ims)


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        tiny("tensorrt")


def test_real_lite0_export_matches_torch(cache: Path, myntra_small) -> None:
    paths = myntra_small.images[:6]
    np.testing.assert_allclose(create("efficientnet-lite0").encode_images(paths),
                               create("efficientnet-lite0", runtime="torch").encode_images(paths), atol=1e-5)


def test_the_environment_chooses_what_auto_means(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASHIONLENS_RUNTIME", "torch")
    assert tiny("auto").runtime == "torch" and tiny("onnx").runtime == "onnx"
    monkeypatch.setenv("FASHIONLENS_RUNTIME", "fast")
    with pytest.raises(ValueError, match="unknown runtime 'fast'"):
        tiny("auto")


def test_non_square_input_keeps_the_photo_aspect_matches_torch_and_has_its_own_fingerprint(cache: Path) -> None:
    import dataclasses

    ims = photos(4)
    tall = dataclasses.replace(PP, width=36)  # 36 x 48: the 3:4 photos without white side bands
    fast, slow = tiny("onnx"), tiny("torch")
    fast.preprocess = slow.preprocess = tall
    from fashionlens.encoders.pixels import pixel_array

    px = pixel_array(ims, tall)
    assert px.shape == (4, 48, 36, 3) and (px[:, :, [0, -1]] < 250).any()  # no padding columns left
    np.testing.assert_allclose(fast.encode_images(ims), slow.encode_images(ims), atol=1e-5)
    square = tiny("torch")
    assert len({fast.fingerprint(), square.fingerprint()}) == 2 and "width=36" in fast.fingerprint()
    assert "width" not in square.fingerprint()  # square encoders keep the fingerprints (and caches) they had
    assert create("efficientnet-lite0", size=160, width=120).preprocess.hw == (160, 120)
    assert create("efficientnet-lite0", size=160, width=160).fingerprint() == create("efficientnet-lite0").fingerprint()
