"""Garment colour: an HSV histogram of a photo's non-white pixels, alone or fused with Lite0.

Catalog photos show one garment on white. A CNN pooled over the whole frame mixes colour with
shape and texture, and at 60x80 px "navy" vs "black" is a few pixel values: the histogram keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess
from fashionlens.encoders.registry import create, register

# No mean/std: the histogram wants plain [0, 1] RGB. 40 px keeps every garment pixel of a 60x80 photo's
# colour statistics while the histogram costs ~0.1 ms an image.
COLOUR_PREPROCESS = Preprocess(size=40, resize="pad", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@dataclass(frozen=True)
class HistogramSpec:
    """Bins: chromatic pixels by hue x saturation x value, near-grey pixels by value alone."""

    hue: int = 12
    sat: int = 2
    val: int = 3
    grey: int = 8
    chroma: float = 0.2  # saturation below this is grey/black/white, whose hue is noise
    white: float = 20 / 255  # a pixel this close to white (every channel) is background

    @property
    def dim(self) -> int:
        return self.hue * self.sat * self.val + self.grey


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) float32 RGB in [0, 1] -> HSV in [0, 1]: the same float ops, in the same order, as
    `matplotlib.colors.rgb_to_hsv` (bit-identical, tested), whose import costs ~0.5-0.8 s of every
    `index` process for these few lines."""
    out = np.zeros_like(rgb)
    top = rgb.max(-1)
    delta = np.ptp(rgb, -1)
    s = np.zeros_like(delta)
    lit = top > 0
    s[lit] = delta[lit] / top[lit]
    chroma = delta > 0
    for c, (a, b) in enumerate(((1, 2), (2, 0), (0, 1))):  # red, green, blue is the max: later ones win ties
        idx = (rgb[..., c] == top) & chroma
        out[idx, 0] = 2.0 * c + (rgb[idx, a] - rgb[idx, b]) / delta[idx]  # + 0.0 for red: exact
    out[..., 0] = (out[..., 0] / 6.0) % 1.0
    out[..., 1] = s
    out[..., 2] = top
    return out


def colour_histograms(rgb: np.ndarray, spec: HistogramSpec = HistogramSpec()) -> np.ndarray:
    """(n, H, W, 3) RGB in [0, 1] -> (n, spec.dim) square-rooted, sum-normalised histograms
    (unit L2 norm: dot products are the Bhattacharyya coefficient). A photo with almost no
    non-white pixels (a white garment) is histogrammed whole."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    hsv = rgb_to_hsv(rgb)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    fg = rgb.min(-1) < 1.0 - spec.white
    fg |= (fg.mean((1, 2)) < 0.02)[:, None, None]
    chromatic = s >= spec.chroma
    hb = np.minimum((h * spec.hue).astype(np.int64), spec.hue - 1)
    sb = np.minimum(((s - spec.chroma) / (1 - spec.chroma) * spec.sat).astype(np.int64), spec.sat - 1)
    vb = np.minimum((v * spec.val).astype(np.int64), spec.val - 1)
    n_col = spec.hue * spec.sat * spec.val
    grey = n_col + np.minimum((v * spec.grey).astype(np.int64), spec.grey - 1)
    bins = np.where(chromatic, (hb * spec.sat + np.maximum(sb, 0)) * spec.val + vb, grey)
    n = len(rgb)
    flat = (np.arange(n)[:, None, None] * spec.dim + bins)[fg]
    counts = np.bincount(flat, minlength=n * spec.dim).reshape(n, spec.dim).astype(np.float32)
    return np.sqrt(counts / np.maximum(counts.sum(1, keepdims=True), 1.0))


class ColourHistogramEncoder(Encoder):
    """Image encoder: the garment's colour histogram (no network, no weights)."""

    modalities = ("image",)

    def __init__(self, name: str = "colourhist-80.hsv", spec: HistogramSpec = HistogramSpec(),
                 preprocess: Preprocess = COLOUR_PREPROCESS, batch_size: int = 256):
        self.name, self.spec, self.preprocess, self.batch_size = name, spec, preprocess, batch_size
        self.dim = spec.dim

    def prepare_image(self, img: Any) -> Any:
        """Fitted to the histogram's input size (in the decode threads, from the photo Lite0 decoded too)."""
        from fashionlens.encoders.pixels import fit_image

        return fit_image(img, self.preprocess)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        from fashionlens.encoders.pixels import normalised_array

        return colour_histograms(normalised_array(images, self.preprocess), self.spec)

    def fingerprint(self) -> str:
        return f"{super().fingerprint()}|{self.spec}"

    def card(self) -> ModelCard:
        return _colour_card(self.name)


class FusedImageEncoder(Encoder):
    """Concatenation of image encoders' unit vectors, each scaled by its weight, renormalised.

    `parts` lets the embedding store cache each part under its own fingerprint, so fusing a colour
    histogram into Lite0 features never re-runs the network on photos it has already seen.
    """

    modalities = ("image",)

    def __init__(self, name: str, parts: list[Encoder], weights: list[float]):
        if len(parts) != len(weights):
            raise ValueError(f"{len(parts)} parts but {len(weights)} weights")
        self.name, self.parts, self.weights = name, parts, [float(w) for w in weights]
        self.dim = sum(p.dim for p in parts)
        self.preprocess = parts[0].preprocess
        self.batch_size = parts[0].batch_size

    def combine(self, features: list[np.ndarray]) -> np.ndarray:
        """The fused vectors from each part's (unit-norm) vectors."""
        # written in place: at 40k photos each full-size temporary is another ~220 MB
        out = np.empty((len(features[0]), sum(f.shape[1] for f in features)), dtype=np.float32)
        at = 0
        for w, f in zip(self.weights, features):
            np.multiply(f, np.float32(w), out=out[:, at : at + f.shape[1]])
            at += f.shape[1]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        return self.combine([p.encode_images(images) for p in self.parts])

    def fingerprint(self) -> str:
        return f"{self.name}|" + "|".join(f"{w}*{p.fingerprint()}" for w, p in zip(self.weights, self.parts))

    def card(self) -> ModelCard:
        return _fused_card(self.name)


def _colour_card(name: str) -> ModelCard:
    return ModelCard(name=name, modalities=("image",), dim=HistogramSpec().dim, source="computed (no weights)",
                     licence="n/a", pooling="histogram of non-white pixels", preprocess=COLOUR_PREPROCESS,
                     notes="garment colour; fuse it into a CNN's features (efficientnet-lite0.colour)")


def _fused_card(name: str) -> ModelCard:
    return ModelCard(name=name, modalities=("image",), dim=1280 + HistogramSpec().dim,
                     source="efficientnet-lite0 + colourhist-80.hsv (offline)", licence="Apache-2.0",
                     pooling="global average | colour histogram",
                     notes="offline default image tower of search: Lite0 features with the garment's colour")


FUSED_COLOUR_WEIGHT = 1.0  # histogram vs Lite0 unit vectors (benchmarks/retrieval_catalog.py)

register("colourhist-80.hsv", _colour_card("colourhist-80.hsv"))(lambda **kw: ColourHistogramEncoder(**kw))


@register("efficientnet-lite0.colour", _fused_card("efficientnet-lite0.colour"))
def build_lite0_colour(weight: float = FUSED_COLOUR_WEIGHT, **kw: Any) -> FusedImageEncoder:
    """Lite0 (offline weights, 160 px) fused with the colour histogram."""
    return FusedImageEncoder("efficientnet-lite0.colour", [create("efficientnet-lite0", **kw),
                                                          create("colourhist-80.hsv")], [1.0, weight])
