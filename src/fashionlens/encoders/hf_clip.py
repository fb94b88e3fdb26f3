"""CLIP checkpoints published in transformers format (FashionCLIP), loaded with `from_pretrained`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard, Preprocess
from fashionlens.encoders.clip import OPENAI_MEAN, OPENAI_STD
from fashionlens.encoders.loading import (
    TorchEncoder,
    features,
    hf_preprocess,
    hub_load,
    loaded_card,
    source_of,
    with_source,
)
from fashionlens.encoders.registry import register

FASHION_CLIP_CARD = ModelCard(
    name="fashion-clip", modalities=("image", "text"), dim=512,
    source="patrickjohncyh/fashion-clip", licence="MIT",
    pooling="CLS + projection (image); EOS token + projection (text)",
    preprocess=Preprocess(size=224, mean=OPENAI_MEAN, std=OPENAI_STD),
    notes="CLIP ViT-B/32 fine-tuned on 700k Farfetch products (Chia et al. 2022): fashion search",
    extra={"library": "transformers", "hub_files": {"patrickjohncyh/fashion-clip": None}},
)


class HFClipEncoder(TorchEncoder):
    """`get_image_features` / `get_text_features` of a transformers CLIP-style model."""

    modalities = ("image", "text")

    def __init__(self, name: str, model: Any, tokenizer: Any, preprocess: Preprocess,
                 device: str = "auto", precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.tokenizer = tokenizer
        self.dim = int(model.config.projection_dim)
        self.max_length = int(model.config.text_config.max_position_embeddings)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        with self._inference():
            return self._numpy(features(self.model.get_image_features(pixel_values=x)))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        batch = self._tokens(self.tokenizer, texts, self.max_length)
        with self._inference():
            return self._numpy(features(self.model.get_text_features(**batch)))

    def card(self) -> ModelCard:
        return loaded_card(FASHION_CLIP_CARD if self.name == FASHION_CLIP_CARD.name else None, self)


def load_hf_clip(name: str, source: str, resize: str = "pad", device: str = "auto",
                 precision: str = "auto", batch_size: int = 32) -> HFClipEncoder:
    """`AutoModel` + `AutoTokenizer` from a hub id or a local directory saved by `save_pretrained`."""
    from transformers import AutoModel, AutoTokenizer

    model, tok = hub_load(name, source, lambda: (AutoModel.from_pretrained(source),
                                                  AutoTokenizer.from_pretrained(source)))
    default = Preprocess(size=int(model.config.vision_config.image_size), mean=OPENAI_MEAN, std=OPENAI_STD)
    enc = HFClipEncoder(name, model, tok, hf_preprocess(source, default, resize), device, precision,
                        batch_size)
    return with_source(enc, source)


@register("fashion-clip", FASHION_CLIP_CARD)
def fashion_clip(weights: str | Path | None = None, **kw: Any) -> HFClipEncoder:
    return load_hf_clip("fashion-clip", source_of(weights, "patrickjohncyh/fashion-clip"), **kw)
