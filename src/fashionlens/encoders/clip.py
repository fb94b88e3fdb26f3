"""CLIP-family two-tower encoders through open_clip (OpenAI CLIP, Marqo fashion CLIP/SigLIP, SigLIP).

open_clip is the reference loader for these checkpoints: it applies QuickGELU for the OpenAI weights,
the SigLIP text tower and tokenizer, and each checkpoint's own preprocessing config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard, Preprocess
from fashionlens.encoders.loading import TorchEncoder, hub_load, loaded_card, source_of, with_source
from fashionlens.encoders.registry import register
from fashionlens.errors import InvalidInputError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_OPEN_CLIP_FILES = ["open_clip_*", "*.json", "*.txt", "*.model"]

# name -> open_clip model name (`hf-hub:` ids carry their weights), pretrained tag, card facts
_MODELS: dict[str, dict[str, Any]] = {
    "clip-vit-b-32.openai": dict(
        arch="ViT-B-32-quickgelu", tag="openai", dim=512, repo="timm/vit_base_patch32_clip_224.openai",
        licence="MIT", size=224, norm=(OPENAI_MEAN, OPENAI_STD),
        notes="OpenAI CLIP ViT-B/32: fast zero-shot baseline; text and images in one space"),
    "clip-vit-b-16.openai": dict(
        arch="ViT-B-16-quickgelu", tag="openai", dim=512, repo="timm/vit_base_patch16_clip_224.openai",
        licence="MIT", size=224, norm=(OPENAI_MEAN, OPENAI_STD),
        notes="OpenAI CLIP ViT-B/16: finer patches, better on small details; ~4x the compute of B/32"),
    "marqo-fashionclip": dict(
        arch="hf-hub:Marqo/marqo-fashionCLIP", tag=None, dim=512, repo="Marqo/marqo-fashionCLIP",
        licence="Apache-2.0", size=224, norm=(OPENAI_MEAN, OPENAI_STD),
        notes="ViT-B/16 CLIP fine-tuned by Marqo on fashion products (GCL): fashion search"),
    "marqo-fashionsiglip": dict(
        arch="hf-hub:Marqo/marqo-fashionSigLIP", tag=None, dim=768, repo="Marqo/marqo-fashionSigLIP",
        licence="Apache-2.0", size=224, norm=((0.5,) * 3, (0.5,) * 3),
        notes="ViT-B/16 SigLIP fine-tuned by Marqo on fashion products: strongest fashion retrieval here"),
    "siglip-b-16": dict(
        arch="hf-hub:timm/ViT-B-16-SigLIP", tag=None, dim=768, repo="timm/ViT-B-16-SigLIP",
        licence="Apache-2.0", size=224, norm=((0.5,) * 3, (0.5,) * 3),
        notes="Google SigLIP ViT-B/16 (WebLI, sigmoid loss): general zero-shot, better than CLIP B/16"),
}


class OpenClipEncoder(TorchEncoder):
    """Image and text towers of an open_clip model, projected into one shared space."""

    modalities = ("image", "text")

    def __init__(self, name: str, model: Any, tokenizer: Any, preprocess: Preprocess,
                 device: str = "auto", precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.tokenizer = tokenizer
        # SigLIP-style models keep the projection inside the text tower: ask the model itself
        self.dim = int(self._encode_texts(["a"]).shape[-1])

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        with self._inference():
            return self._numpy(self.model.encode_image(x))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with self._inference():
            return self._numpy(self.model.encode_text(tokens))

    def card(self) -> ModelCard:
        return loaded_card(_card(self.name) if self.name in _MODELS else None, self)


def load_open_clip(name: str, model_name: str, pretrained: str | None = None,
                   weights: str | Path | None = None, resize: str = "pad", device: str = "auto",
                   precision: str = "auto", batch_size: int = 32) -> OpenClipEncoder:
    """Load through `open_clip.create_model`; `weights` is a local dir (open_clip_config.json +
    weights, as on the hub) or a checkpoint file for `model_name`'s architecture."""
    import open_clip

    if weights is not None and Path(weights).is_dir():
        model_name, pretrained = f"local-dir:{Path(weights).resolve()}", None
    elif weights is not None:
        if model_name.startswith("hf-hub:"):
            raise InvalidInputError(f"'{name}': pass the directory holding open_clip_config.json and the "
                             f"weights (a hub snapshot), not a single file: {weights}")
        pretrained = str(weights)
    default = model_name if pretrained is None else f"open_clip {model_name} pretrained={pretrained}"

    def _load() -> tuple[Any, Any]:
        model = open_clip.create_model(model_name, pretrained=pretrained, require_pretrained=True)
        return model, open_clip.get_tokenizer(model_name)

    model, tokenizer = hub_load(name, source_of(weights, default), _load)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    pp = Preprocess(size=int(size[0] if isinstance(size, (tuple, list)) else size), resize=resize,
                    mean=tuple(cfg.get("mean", OPENAI_MEAN)), std=tuple(cfg.get("std", OPENAI_STD)))
    return with_source(OpenClipEncoder(name, model, tokenizer, pp, device, precision, batch_size),
                       str(weights or ""))


def _card(name: str) -> ModelCard:
    m = _MODELS[name]
    how = m["arch"] if m["tag"] is None else f"{m['arch']} pretrained={m['tag']}"
    return ModelCard(
        name=name, modalities=("image", "text"), dim=m["dim"], source=m["repo"], licence=m["licence"],
        pooling="CLS/attention-pool + projection (image); EOT token + projection (text)",
        preprocess=Preprocess(size=m["size"], mean=m["norm"][0], std=m["norm"][1]),
        notes=m["notes"], extra={"library": "open_clip", "open_clip": how, "hub_files": {m["repo"]: _OPEN_CLIP_FILES}},
    )


def _factory(name: str) -> Any:
    m = _MODELS[name]

    def build(weights: str | Path | None = None, **kw: Any) -> OpenClipEncoder:
        return load_open_clip(name, m["arch"], m["tag"], weights=weights, **kw)

    build.__doc__ = f"{name}: {m['notes']}"
    return build


for _name in _MODELS:
    register(_name, _card(_name))(_factory(_name))
