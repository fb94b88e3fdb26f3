"""Photos to pixel arrays at an encoder's input size, in numpy and PIL only: the ONNX Runtime and
histogram encoders run from these without importing torch (~650 MB and seconds per process)."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.catalog.images import open_image
from fashionlens.encoders.base import Preprocess


def fit_image(img: Image.Image, pp: Preprocess) -> Image.Image:
    """`img` at the encoder's input size (`pp.hw`): letterboxed ("pad") or centre-cropped ("crop").
    An image already at that size is returned as is (both modes leave it unchanged)."""
    th, tw = pp.hw
    if img.size == (tw, th):
        return img
    w, h = img.size
    if pp.resize == "crop":
        scale = max(tw / w, th / h)
        img = img.resize((max(tw, round(w * scale)), max(th, round(h * scale))), Image.BICUBIC)
        w, h = img.size
        left, top = (w - tw) // 2, (h - th) // 2
        return img.crop((left, top, left + tw, top + th))
    # letterbox: the whole garment stays in view, padded with the catalog's white background
    scale = min(tw / w, th / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (tw, th), (pp.fill,) * 3)
    canvas.paste(img.resize((nw, nh), Image.BICUBIC), ((tw - nw) // 2, (th - nh) // 2))
    return canvas


def pixel_array(images: Sequence[Any], pp: Preprocess) -> np.ndarray:
    """PIL images or paths -> (n, height, width, 3) uint8, fitted to the encoder's input size."""
    return np.stack([np.asarray(fit_image(open_image(im) if not isinstance(im, Image.Image) else im.convert("RGB"), pp))
                     for im in images])


def normalised_array(images: Sequence[Any], pp: Preprocess) -> np.ndarray:
    """(n, size, size, 3) float32 `(pixels / 255 - mean) / std`: the float ops of `pixel_batch`, channels last."""
    x = pixel_array(images, pp).astype(np.float32) / np.float32(255.0)
    return (x - np.asarray(pp.mean, np.float32)) / np.asarray(pp.std, np.float32)


def accelerator_present() -> bool:
    """Whether `device="auto"` may pick a GPU, answered without importing torch when it is not
    loaded yet: an NVIDIA/AMD driver on Linux, or macOS (MPS). Only then is torch asked."""
    if "torch" in sys.modules:
        from fashionlens.encoders.torch_utils import resolve_device

        return resolve_device("auto").type != "cpu"
    if platform.system() == "Darwin":
        return True
    return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/kfd")) \
        or bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
