"""ResNet-50 with the original torchvision ImageNet weights, through timm (`resnet50.tv_in1k`).

timm hosts the torchvision weights on the HF hub with their preprocessing config, so the model
cache, offline mode and `fashionlens download` work as for every other family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard, Preprocess
from fashionlens.encoders.loading import TorchEncoder, hub_load, loaded_card, with_source
from fashionlens.encoders.registry import register

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
RESNET_CARD = ModelCard(
    name="resnet50.tv-in1k", modalities=("image",), dim=2048,
    source="timm/resnet50.tv_in1k", licence="BSD-3-Clause",
    pooling="global average", preprocess=Preprocess(size=224),
    notes="supervised ImageNet CNN (torchvision IMAGENET1K_V1 weights): the classic baseline",
    extra={"library": "timm", "hub_files": {"timm/resnet50.tv_in1k": None}},
)


class TimmEncoder(TorchEncoder):
    """Pooled features of a timm network built with `num_classes=0`."""

    modalities = ("image",)

    def __init__(self, name: str, model: Any, preprocess: Preprocess, device: str = "auto",
                 precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.dim = int(model.num_features)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        with self._inference():
            return self._numpy(self.model(x))

    def card(self) -> ModelCard:
        return loaded_card(RESNET_CARD if self.name == RESNET_CARD.name else None, self)


def load_timm(name: str, arch: str, weights: str | Path | None = None, size: int | None = None,
              resize: str = "pad", device: str = "auto", precision: str = "auto",
              batch_size: int = 32) -> TimmEncoder:
    """`timm.create_model(arch, pretrained=True)`; `weights` (a file, or a hub snapshot directory)
    replaces the hub download through timm's own `pretrained_cfg_overlay`. A CNN takes any `size`:
    the 60x80 catalog photos gain little from the 224 px default."""
    import timm
    from timm.data import resolve_data_config

    kw: dict[str, Any] = {}
    if weights is not None:
        path = Path(weights)
        if path.is_dir():
            found = [path / f for f in _WEIGHT_FILES if (path / f).is_file()]
            if not found:
                raise FileNotFoundError(f"{path}: no {' or '.join(_WEIGHT_FILES)} for '{name}'")
            path = found[0]
        kw["pretrained_cfg_overlay"] = {"file": str(path)}
    model = hub_load(name, str(weights) if weights is not None else f"timm/{arch}",
                     lambda: timm.create_model(arch, pretrained=True, num_classes=0, **kw))
    cfg = resolve_data_config({}, model=model)
    pp = Preprocess(size=int(size or cfg["input_size"][-1]), resize=resize, mean=tuple(cfg["mean"]),
                    std=tuple(cfg["std"]))
    enc = TimmEncoder(name, model, pp, device, precision, batch_size)
    return with_source(enc, str(weights or ""))


@register("resnet50.tv-in1k", RESNET_CARD)
def resnet50_tv(weights: str | Path | None = None, **kw: Any) -> TimmEncoder:
    return load_timm("resnet50.tv-in1k", "resnet50.tv_in1k", weights, **kw)
