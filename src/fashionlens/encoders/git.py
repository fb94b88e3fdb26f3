"""GIT base (Microsoft's generative image-to-text transformer): one checkpoint embeds and captions.

GIT was trained to caption, not to match images and texts, so its two towers share a width
(the decoder's input space) but are not contrastively aligned: compare images with images and
texts with texts, or align them with `fashionlens train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard, Preprocess
from fashionlens.encoders.captioning import CAPTIONERS, Captioner
from fashionlens.encoders.clip import OPENAI_MEAN, OPENAI_STD
from fashionlens.encoders.loading import (
    TorchEncoder,
    hf_preprocess,
    hub_load,
    loaded_card,
    masked_mean,
    source_of,
    with_source,
)
from fashionlens.encoders.registry import register

GIT_ID = CAPTIONERS["git-base"][0]
GIT_CARD = ModelCard(
    name="git-base", modalities=("image", "text"), dim=768, source=GIT_ID, licence="MIT",
    pooling="mean of projected visual tokens (image); masked mean of text-only decoder states (text)",
    preprocess=Preprocess(size=224, mean=OPENAI_MEAN, std=OPENAI_STD),
    notes="GIT base (CLIP ViT-B/16 image encoder + text decoder): captions for categorization; "
          "towers are NOT aligned with each other",
    extra={"library": "transformers", "captions": True, "aligned_towers": False,
           "hub_files": {GIT_ID: None}},
)


class GitEncoder(TorchEncoder):
    """Image: mean of GIT's projected visual tokens. Text: masked mean of text-only hidden states."""

    modalities = ("image", "text")

    def __init__(self, name: str, model: Any, tokenizer: Any, preprocess: Preprocess,
                 device: str = "auto", precision: str = "auto", batch_size: int = 32):
        self._setup(name, model, preprocess, device, precision, batch_size)
        self.tokenizer = tokenizer
        self.dim = int(model.config.hidden_size)
        self.max_length = int(model.config.max_position_embeddings)
        self._captioner = Captioner(name, model, tokenizer, preprocess, str(self.device), batch_size)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        x = self._pixels(images)
        git = self.model.git
        with self._inference():
            tokens = git.visual_projection(git.image_encoder(pixel_values=x).last_hidden_state)
            return self._numpy(tokens.mean(1))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        batch = self._tokens(self.tokenizer, texts, self.max_length)
        with self._inference():
            hidden = self.model.git(**batch).last_hidden_state
            return self._numpy(masked_mean(hidden, batch["attention_mask"]))

    def caption(self, images: list[Any], max_new_tokens: int = 30, num_beams: int = 1) -> list[str]:
        """Captions from the same GIT checkpoint."""
        return self._captioner.caption(images, max_new_tokens, num_beams)

    def card(self) -> ModelCard:
        return loaded_card(GIT_CARD, self)


@register("git-base", GIT_CARD)
def git_base(weights: str | Path | None = None, resize: str = "pad", device: str = "auto",
             precision: str = "auto", batch_size: int = 32) -> GitEncoder:
    """`weights`: a local GitForCausalLM directory (default: the microsoft/git-base hub id)."""
    from transformers import AutoTokenizer, GitForCausalLM

    source = source_of(weights, GIT_ID)
    model, tok = hub_load("git-base", source, lambda: (GitForCausalLM.from_pretrained(source),
                                                       AutoTokenizer.from_pretrained(source)))
    default = Preprocess(size=int(model.config.vision_config.image_size), mean=OPENAI_MEAN, std=OPENAI_STD)
    enc = GitEncoder("git-base", model, tok, hf_preprocess(source, default, resize), device,
                     precision, batch_size)
    return with_source(enc, source)
