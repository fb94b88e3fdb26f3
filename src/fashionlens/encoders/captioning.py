"""Image captioners (BLIP, GIT) for categorization and zero-shot labels: images in, strings out.

    >>> from fashionlens.encoders.captioning import load_captioner
    >>> load_captioner("git-base").caption(["shirt.jpg"])   # doctest: +SKIP
    ['a blue shirt with a white collar']

`create("blip-base").caption(...)` and `create("git-base").caption(...)` give the same captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashionlens.encoders.base import Preprocess
from fashionlens.encoders.clip import OPENAI_MEAN, OPENAI_STD
from fashionlens.encoders.loading import hf_preprocess, hub_load, source_of
from fashionlens.errors import NotFoundError

# name -> (hub id of the captioning checkpoint, licence, default resolution)
CAPTIONERS: dict[str, tuple[str, str, int]] = {
    "blip-base": ("Salesforce/blip-image-captioning-base", "BSD-3-Clause", 384),
    "git-base": ("microsoft/git-base", "MIT", 224),
}


class Captioner:
    """Greedy (or beam) decoding of a transformers image-to-text model, batched, no grad."""

    def __init__(self, name: str, model: Any, tokenizer: Any, preprocess: Preprocess,
                 device: str = "auto", batch_size: int = 16):
        from fashionlens.encoders.torch_utils import resolve_device

        self.name = name
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.batch_size = batch_size

    def caption(self, images: list[Any], max_new_tokens: int = 30, num_beams: int = 1) -> list[str]:
        """One caption per image (PIL images or paths), in order."""
        import torch

        from fashionlens.encoders.torch_utils import pixel_batch

        out: list[str] = []
        for i in range(0, len(images), self.batch_size):
            x = pixel_batch(list(images[i : i + self.batch_size]), self.preprocess).to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(pixel_values=x, max_new_tokens=max_new_tokens,
                                          num_beams=num_beams, do_sample=False)
            out.extend(t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True))
        return out


def load_captioner(name: str, weights: str | Path | None = None, resize: str = "pad",
                   device: str = "auto", batch_size: int = 16) -> Captioner:
    """`AutoModelForImageTextToText` (BlipForConditionalGeneration / GitForCausalLM) + tokenizer."""
    if name not in CAPTIONERS:
        raise NotFoundError(f"unknown captioner '{name}'. Known: {', '.join(CAPTIONERS)}")
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    source = source_of(weights, CAPTIONERS[name][0])
    model, tok = hub_load(name, source, lambda: (AutoModelForImageTextToText.from_pretrained(source),
                                                  AutoTokenizer.from_pretrained(source)))
    default = Preprocess(size=int(model.config.vision_config.image_size), mean=OPENAI_MEAN,
                         std=OPENAI_STD)
    return Captioner(name, model, tok, hf_preprocess(source, default, resize), device, batch_size)
