"""Device choice and pixel preprocessing shared by the torch-based encoder families."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from fashionlens.catalog.images import open_image
from fashionlens.encoders.base import Preprocess


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks cuda > mps > cpu."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Half precision on GPUs only: bf16 is ~7x slower than fp32 on a plain CPU."""
    if precision == "fp32" or device.type == "cpu":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16


def fit_image(img: Image.Image, pp: Preprocess) -> Image.Image:
    """`img` at the encoder's input size: letterboxed ("pad") or centre-cropped ("crop").
    An image already at that size is returned as is (both modes leave it unchanged)."""
    s = pp.size
    if img.size == (s, s):
        return img
    if pp.resize == "crop":
        w, h = img.size
        scale = s / min(w, h)
        img = img.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))
    # letterbox: the whole garment stays in view, padded with the catalog's white background
    w, h = img.size
    scale = s / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (s, s), (pp.fill,) * 3)
    canvas.paste(img.resize((nw, nh), Image.BICUBIC), ((s - nw) // 2, (s - nh) // 2))
    return canvas


def pixel_array(images: Sequence[Any], pp: Preprocess) -> np.ndarray:
    """PIL images or paths -> (n, size, size, 3) uint8, fitted to the encoder's input size."""
    return np.stack([np.asarray(fit_image(open_image(im) if not isinstance(im, Image.Image) else im.convert("RGB"), pp))
                     for im in images])


def pixel_batch(images: Sequence[Any], pp: Preprocess) -> torch.Tensor:
    """PIL images or paths -> normalised float tensor (n, 3, size, size)."""
    x = torch.from_numpy(pixel_array(images, pp)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(pp.mean).view(1, 3, 1, 1)
    std = torch.tensor(pp.std).view(1, 3, 1, 1)
    return (x - mean) / std
