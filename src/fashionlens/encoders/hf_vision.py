"""Self-supervised ViTs through transformers: DINO v1 (ViTModel), DINOv2, DINOv3.

All three are pooled the way their papers evaluate them with k-NN: the final-layer-normed CLS
token. transformers is the reference loader for the official facebook/* checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import IMAGENET_MEAN, IMAGENET_STD, ModelCard, Preprocess
from fashionlens.encoders.loading import (
    TorchEncoder,
    hf_preprocess,
    hub_load,
    loaded_card,
    source_of,
    with_source,
)
from fashionlens.encoders.registry import register

_DINOV3_LICENCE = "DINOv3 License (gated repo)"
# name -> (hub id, dim, licence, notes)
_MODELS: dict[str, tuple[str, int, str, str]] = {
    "dino-vits16": ("facebook/dino-vits16", 384, "Apache-2.0",
                    "DINO v1 ViT-S/16 (ImageNet, self-supervised): visual near-duplicates, style"),
    "dino-vitb16": ("facebook/dino-vitb16", 768, "Apache-2.0",
                    "DINO v1 ViT-B/16: stronger v1 features at ~4x the compute of S/16"),
    "dinov2-vits14": ("facebook/dinov2-small", 384, "Apache-2.0",
                      "DINOv2 ViT-S/14 (LVD-142M): best small image-only features for k-NN/linear probes"),
    "dinov2-vitb14": ("facebook/dinov2-base", 768, "Apache-2.0",
                      "DINOv2 ViT-B/14: image-only similarity and attribute probes"),
    "dinov3-vits16": ("facebook/dinov3-vits16-pretrain-lvd1689m", 384, _DINOV3_LICENCE,
                      "DINOv3 ViT-S/16 (LVD-1689M): newest self-supervised features, dense-friendly"),
    "dinov3-vitb16": ("facebook/dinov3-vitb16-pretrain-lvd1689m", 768, _DINOV3_LICENCE,
                      "DINOv3 ViT-B/16: strongest image-only backbone here"),
}
_SIZE = 224


class HFVisionEncoder(TorchEncoder):
    """CLS token of `last_hidden_state` (after the final layer norm) of a transformers ViT."""

    modalities = ("image",)

    def __init__(self, name: str, model: Any, preprocess: Preprocess, device: str = "auto",
                 precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.dim = int(model.config.hidden_size)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        with self._inference():
            return self._numpy(self.model(pixel_values=x).last_hidden_state[:, 0])

    def card(self) -> ModelCard:
        return loaded_card(_card(self.name) if self.name in _MODELS else None, self)


def load_hf_vision(name: str, source: str, resize: str = "pad", device: str = "auto",
                   precision: str = "auto", batch_size: int = 32) -> HFVisionEncoder:
    """`AutoModel.from_pretrained` (no pooling head: DINO checkpoints have none trained)."""
    from transformers import AutoConfig, AutoModel

    def _load() -> Any:
        cfg = AutoConfig.from_pretrained(source)
        kw = {"add_pooling_layer": False} if cfg.model_type == "vit" else {}
        return AutoModel.from_pretrained(source, **kw)

    model = hub_load(name, source, _load)
    size = getattr(model.config, "image_size", _SIZE)
    default = Preprocess(size=int(size if isinstance(size, int) else size[0]),
                         mean=IMAGENET_MEAN, std=IMAGENET_STD)
    enc = HFVisionEncoder(name, model, hf_preprocess(source, default, resize), device, precision,
                          batch_size)
    return with_source(enc, source)


def _card(name: str) -> ModelCard:
    hub_id, dim, licence, notes = _MODELS[name]
    return ModelCard(name=name, modalities=("image",), dim=dim, source=hub_id, licence=licence,
                     pooling="CLS token after final layer norm", preprocess=Preprocess(size=_SIZE),
                     notes=notes, extra={"library": "transformers", "hub_files": {hub_id: None}})


def _factory(name: str) -> Any:
    def build(weights: str | Path | None = None, **kw: Any) -> HFVisionEncoder:
        return load_hf_vision(name, source_of(weights, _MODELS[name][0]), **kw)

    build.__doc__ = f"{name}: {_MODELS[name][3]}"
    return build


for _name in _MODELS:
    register(_name, _card(_name))(_factory(_name))
