"""BLIP base: the ITC towers of the retrieval checkpoint embed; the captioning checkpoint captions.

BLIP ships its contrastive (image-text retrieval) heads and its caption decoder as two checkpoints;
`blip-base` embeds with the first and loads the second only when `caption()` is first called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard, Preprocess
from fashionlens.encoders.captioning import CAPTIONERS, Captioner, load_captioner
from fashionlens.encoders.clip import OPENAI_MEAN, OPENAI_STD
from fashionlens.encoders.loading import (
    TorchEncoder,
    hf_preprocess,
    hub_load,
    loaded_card,
    source_of,
    with_source,
)
from fashionlens.encoders.registry import register

RETRIEVAL_ID = "Salesforce/blip-itm-base-coco"
BLIP_CARD = ModelCard(
    name="blip-base", modalities=("image", "text"), dim=256,
    source=RETRIEVAL_ID, licence="BSD-3-Clause",
    pooling="CLS + ITC projection (both towers)",
    preprocess=Preprocess(size=384, mean=OPENAI_MEAN, std=OPENAI_STD),
    notes="BLIP ViT-B/16 (COCO retrieval): image-text search in one 256-d space, plus captions",
    extra={"library": "transformers", "captions": True, "captioner": CAPTIONERS["blip-base"][0],
           "hub_files": {RETRIEVAL_ID: None, CAPTIONERS["blip-base"][0]: None}},
)


class BlipEncoder(TorchEncoder):
    """`vision_proj(CLS)` and `text_proj(CLS)` of `BlipForImageTextRetrieval` (its ITC space)."""

    modalities = ("image", "text")

    def __init__(self, name: str, model: Any, tokenizer: Any, preprocess: Preprocess,
                 captioner_weights: str | Path | None = None, device: str = "auto",
                 precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.tokenizer = tokenizer
        self.dim = int(model.config.image_text_hidden_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self._captioner_weights = captioner_weights
        self._captioner: Captioner | None = None

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        with self._inference():
            cls = self.model.vision_model(pixel_values=x).last_hidden_state[:, 0]
            return self._numpy(self.model.vision_proj(cls))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        batch = self._tokens(self.tokenizer, texts, self.max_length)
        with self._inference():
            cls = self.model.text_encoder(**batch).last_hidden_state[:, 0]
            return self._numpy(self.model.text_proj(cls))

    def caption(self, images: list[Any], max_new_tokens: int = 30, num_beams: int = 1) -> list[str]:
        """Captions from BLIP's captioning checkpoint (loaded on first use)."""
        if self._captioner is None:
            self._captioner = load_captioner("blip-base", self._captioner_weights,
                                             self.preprocess.resize if self.preprocess else "pad",
                                             str(self.device))
        return self._captioner.caption(images, max_new_tokens, num_beams)

    def card(self) -> ModelCard:
        return loaded_card(BLIP_CARD, self)


@register("blip-base", BLIP_CARD)
def blip_base(weights: str | Path | None = None, captioner_weights: str | Path | None = None,
              resize: str = "pad", device: str = "auto", precision: str = "auto",
              batch_size: int = 32) -> BlipEncoder:
    """`weights`: a local BlipForImageTextRetrieval dir; `captioner_weights`: a local
    BlipForConditionalGeneration dir (both default to the Salesforce hub ids)."""
    from transformers import AutoTokenizer, BlipForImageTextRetrieval

    source = source_of(weights, RETRIEVAL_ID)
    model, tok = hub_load("blip-base", source, lambda: (BlipForImageTextRetrieval.from_pretrained(source),
                                                        AutoTokenizer.from_pretrained(source)))
    default = Preprocess(size=int(model.config.vision_config.image_size), mean=OPENAI_MEAN, std=OPENAI_STD)
    enc = BlipEncoder("blip-base", model, tok, hf_preprocess(source, default, resize),
                      captioner_weights, device, precision, batch_size)
    return with_source(enc, source)
