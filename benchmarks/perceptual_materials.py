"""2AFC on the real human material-similarity triplets (../shared/data/material-triplets):
untuned EfficientNet-Lite0 vs an MLP head (hinge / logistic), on triplets whose reference images
are held out, as rendered and under the SYNTHETIC relighting proxy (`lighting.relight`, strength 2:
the shared set has one rendered lighting only); untuned, plain MLP and human ceiling alongside.
"default" is `PerceptualConfig()` as `fashionlens perceptual train --eval-split reference` runs it;
"previous-default" is the default before issue 20 (RGB only, no pooling, 3 photometric views).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/perceptual_materials.py [OUT_DIR [CONFIG ...]]

Prints one JSON object per configuration and writes runs under OUT_DIR (default /tmp/perceptual-bench).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from fashionlens.perceptual.run import train_perceptual  # noqa: E402
from fashionlens.perceptual.train import PerceptualConfig  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "material-triplets" / "triplets.csv"
CONFIGS = {
    "default": {},
    "previous-default": {"inputs": ["rgb"], "pool_views": 1, "n_views": 4, "aug_strength": 2.0,
                         "aug_family": "photometric"},
    # one idea at a time against the relighting proxy (issue 20; defaults otherwise)
    "pooled-grey-world": {"n_views": 1},  # the default before colour_jitter training views
    "plain-mlp": {"inputs": ["rgb"], "pool_views": 1, "n_views": 1},
    "rgb-pooled": {"inputs": ["rgb"], "n_views": 1},
    "grey-world": {"inputs": ["grey_world"], "pool_views": 1, "n_views": 1},
    "grey-world-pooled": {"inputs": ["grey_world"], "n_views": 1},
    "rgb+grey-world": {"pool_views": 1, "n_views": 1},
    "local-contrast": {"inputs": ["local_contrast"], "pool_views": 1, "n_views": 1},
    "rgb+local-contrast": {"inputs": ["rgb", "local_contrast"], "pool_views": 1, "n_views": 1},
    "mlp-hinge": {"loss": "hinge", "margin": 0.05},
    "mlp-logistic": {"loss": "logistic", "temperature": 0.02},
    # the renders are 298 px: feed the backbone 224 px instead of its catalog default of 160 px
    "mlp-logistic-224px": {"loss": "logistic", "temperature": 0.02, "encoder_kwargs": {"size": 224}},
    # training views as strong as the "other lighting" test views
    "mlp-logistic-strongaug": {"loss": "logistic", "temperature": 0.02, "aug_strength": 2.0},
    "mlp-hinge-strongaug": {"loss": "hinge", "margin": 0.05, "aug_strength": 2.0},
    "mlp-logistic-224px-strongaug": {"loss": "logistic", "temperature": 0.02, "aug_strength": 2.0,
                                     "encoder_kwargs": {"size": 224}},
    # LoRA (r 16, alpha 32) in the pointwise convolutions of the CNN, end to end on the photos
    # ensemble (concatenated features) of the same backbone at two input sizes
    "mlp-logistic-ensemble-160+224-strongaug": {"loss": "logistic", "temperature": 0.02, "aug_strength": 2.0,
                                                "encoders": ["efficientnet-lite0", "perceptual_materials:lite0_224"]},
    "mlp-logistic-texture-strongaug": {"loss": "logistic", "temperature": 0.02, "aug_strength": 2.0,
                                       "encoders": ["perceptual_materials:lite0_texture"]},
    "lora-hinge": {"mode": "lora", "loss": "hinge", "aug_strength": 2.0, "lora_targets": ["conv_pw", "conv_pwl"],
                   "epochs": 8, "patience": 3, "lr": 5e-4},
}

ISSUE20 = ("default", "previous-default", "pooled-grey-world", "plain-mlp", "rgb-pooled", "grey-world",
           "grey-world-pooled", "rgb+grey-world", "local-contrast", "rgb+local-contrast")


def lite0_224():
    """EfficientNet-Lite0 at 224 px, as a `module:factory` encoder (run with PYTHONPATH=benchmarks)."""
    from fashionlens.encoders import create

    return create("efficientnet-lite0", size=224)


def lite0_texture():
    """Lite0's pooled features + per-channel mean and std of its last 4 intermediate feature maps
    (texture statistics, each part unit norm), as a `module:factory` encoder (PYTHONPATH=benchmarks)."""
    import numpy as np

    from fashionlens.encoders import create
    from fashionlens.encoders.base import Encoder, l2_normalize
    from fashionlens.encoders.torch_utils import pixel_batch

    base = create("efficientnet-lite0")

    class Texture(Encoder):
        modalities, name, dim, preprocess, batch_size = ("image",), "lite0-texture", 1280 + 2 * 496, base.preprocess, 16

        def _encode_images(self, images):
            x = pixel_batch(images, self.preprocess)
            with torch.inference_mode():
                maps = base.model.forward_intermediates(x, intermediates_only=True)[1:]
                parts = [base.model(x)] + [t for f in maps for t in (f.mean((2, 3)), f.std((2, 3)))]
            return np.concatenate([l2_normalize(p.float().numpy()) for p in parts], axis=1)

    return Texture()


def main() -> None:
    torch.set_num_threads(1)  # two cores shared with other work: one thread avoids spin-waiting
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/perceptual-bench")
    names = sys.argv[2:] or list(CONFIGS)
    for name in names:
        # the issue-7 configs share these settings (augmentation strength s = 1 unless they say so)
        shared = {} if name in ISSUE20 else {
            "mode": "mlp", "epochs": 40, "lr": 1e-3, "patience": 8, "aug_strength": 1.0, "batch_size": 2048,
            "n_views": 4, "aug_family": "photometric", "inputs": ["rgb"], "pool_views": 1}
        cfg = PerceptualConfig(triplets=str(DATA), out=str(out / name), split="reference", eval_lighting=2.0,
                               test_size=0.2, val_size=0.15, seed=0, cache_dir=str(out / "cache"),
                               **{**shared, **CONFIGS[name]})
        t0 = time.time()
        m = train_perceptual(cfg)
        m.pop("history")
        print(json.dumps({"config": name, "wall_s": round(time.time() - t0, 1), **m}), flush=True)


if __name__ == "__main__":
    main()
