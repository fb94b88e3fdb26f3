"""Lighting as pure functions of float RGB images (H, W, 3) in [0, 1], sRGB-encoded.

Augmentations that change what relighting changes beyond brightness / contrast / gamma: the
illuminant's colour temperature (von Kries gains on the Planckian locus), highlight strength, and
where highlights fall in the frame (the eight flips / quarter turns); `relight` draws the held-out
test proxy from them, `colour_jitter` a training augmentation from other families. Lighting-invariant inputs:
chromaticity (blind to any per-pixel intensity scaling: exposure, shading), grey world (blind to
any per-channel gain: colour temperature, exposure) and local contrast (blind to exposure and to
illumination that varies slowly across the image).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# linear sRGB <- CIE XYZ (D65), IEC 61966-2-1
_XYZ_TO_RGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # luminance of linear sRGB
REFERENCE_K = 6500.0  # the renders' white is taken as a 6500 K illuminant


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body at `kelvin` (1667-25000 K; Kim et al. 2002 cubic fit)."""
    t = float(kelvin)
    if not 1667 <= t <= 25000:
        raise ValueError(f"colour temperature {t:g} K is outside 1667-25000 K")
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def white_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB of a black body's white at luminance 1."""
    x, y = planckian_xy(kelvin)
    return _XYZ_TO_RGB @ np.array([x / y, 1.0, (1 - x - y) / y])


def colour_temperature(img: np.ndarray, kelvin: float, reference: float = REFERENCE_K) -> np.ndarray:
    """The image as lit by a `kelvin` illuminant instead of `reference`: von Kries per-channel gains
    in linear light, scaled so that a grey keeps its luminance (lower K = warmer, redder)."""
    gains = white_rgb(kelvin) / white_rgb(reference)
    gains = gains / (_LUMA @ gains)
    return linear_to_srgb(srgb_to_linear(img) * gains)


def exposure(img: np.ndarray, stops: float) -> np.ndarray:
    """Scale linear light by 2**stops (clipped at white, as a camera would)."""
    return np.clip(linear_to_srgb(srgb_to_linear(img) * 2.0 ** float(stops)), 0.0, 1.0)


def highlight_gain(img: np.ndarray, gain: float, quantile: float = 0.9) -> np.ndarray:
    """Scale the light above the image's `quantile` luminance by `gain` (stronger or weaker
    specular highlights); pixels below that luminance are unchanged."""
    lin = srgb_to_linear(img)
    lum = lin @ _LUMA
    t = float(np.quantile(lum, quantile))
    excess = np.clip(lum - t, 0.0, None)[..., None]
    scale = (t + gain * excess) / np.maximum(t + excess, 1e-12)  # per pixel, hue kept
    return np.clip(linear_to_srgb(lin * scale), 0.0, 1.0)


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0-7) of the eight quarter turns and mirror images (k = 0: the image itself)."""
    out = np.rot90(img, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def chromaticity(img: np.ndarray) -> np.ndarray:
    """r, g, b = linear RGB / (R + G + B), shown as an sRGB image with a grey of 0.5 luminance:
    unchanged by any per-pixel scaling of the light (exposure, shading, shadows)."""
    lin = srgb_to_linear(img)
    chroma = lin / np.maximum(lin.sum(-1, keepdims=True), 1e-6)
    return np.clip(linear_to_srgb(chroma * 3 * 0.214), 0.0, 1.0)  # 0.214 linear = 0.5 sRGB


def local_contrast(img: np.ndarray, sigma: float = 0.05) -> np.ndarray:
    """Log-luminance minus its Gaussian blur (sigma as a share of the image side), with the
    pixel's chromaticity put back: unchanged by exposure and nearly so by light that varies slowly
    across the image (Retinex high-pass)."""
    from scipy.ndimage import gaussian_filter

    lin = srgb_to_linear(img)
    lum = np.maximum(lin @ _LUMA, 1e-4)
    log_l = np.log(lum)
    detail = log_l - gaussian_filter(log_l, sigma * max(img.shape[:2]), mode="reflect")
    chroma = lin / np.maximum(lin.sum(-1, keepdims=True), 1e-6)
    return np.clip(linear_to_srgb(chroma * 3 * 0.214 * np.exp(detail)[..., None]), 0.0, 1.0)


def grey_world(img: np.ndarray) -> np.ndarray:
    """Each linear channel divided by its image mean, shown with a mean of 0.5 sRGB grey (grey-world
    colour constancy): unchanged by any per-channel gain of the light (colour temperature as a von
    Kries change, exposure, a colour cast), as long as nothing clips."""
    lin = srgb_to_linear(img)
    return np.clip(linear_to_srgb(lin / np.maximum(lin.mean((0, 1), keepdims=True), 1e-6) * 0.214), 0.0, 1.0)


def relight(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random other lighting: colour temperature (mired shift, 6500 K +-1/3 of its range x s:
    about 4000-17000 K at s = 1), exposure +-0.75 s stops, highlight gain x e^(+-0.7 s) and a
    random flip / quarter turn (moves the highlights in the frame)."""
    s = float(strength)
    mired = 1e6 / REFERENCE_K + rng.uniform(-1, 1) * 90.0 * s
    kelvin = float(np.clip(1e6 / max(mired, 1e6 / 25000), 1667, 25000))
    out = colour_temperature(img, kelvin)
    out = exposure(out, rng.uniform(-0.75, 0.75) * s)
    out = highlight_gain(out, float(np.exp(rng.uniform(-0.7, 0.7) * s)))
    return dihedral(out, int(rng.integers(8)))


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random lighting change for TRAINING, drawn from other families than the `relight` test
    proxy so that a score under the proxy is not a score on the training distribution: a random 3x3
    colour matrix in linear light (independent per-channel gains x e^(+-0.25 s), off the Planckian
    locus, plus cross-talk +-0.04 s; a grey keeps its luminance), a random monotone tone curve (power
    e^(+-0.3 s) blended with an S / inverse-S curve) and a soft light spot (a Gaussian of 15-45% of
    the side at a random place, x(1 + a), a in [-0.4, 0.8] s) instead of the proxy's brightening of
    the top 10% of luminance. No flips: the encoder pools over those."""
    s = float(strength)
    h, w = img.shape[:2]
    lin = srgb_to_linear(img)
    m = np.diag(np.exp(rng.uniform(-0.25, 0.25, 3) * s)) + rng.uniform(-0.04, 0.04, (3, 3)) * s * (1 - np.eye(3))
    m = m / (_LUMA @ m @ np.ones(3))  # grey (1, 1, 1) keeps luminance 1
    lin = lin @ m.T
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    cy, cx, sigma = rng.uniform(0, h / max(h, w)), rng.uniform(0, w / max(h, w)), rng.uniform(0.15, 0.45)
    spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    lin = lin * (1.0 + rng.uniform(-0.4, 0.8) * s * spot)[..., None]
    x = np.clip(linear_to_srgb(lin), 0.0, 1.0) ** float(np.exp(rng.uniform(-0.3, 0.3) * s))
    blend = rng.uniform(-0.4, 0.4) * min(s, 1.0)  # |blend| <= 0.4 keeps the curve increasing
    return np.clip((1 - blend) * x + blend * x * x * (3 - 2 * x), 0.0, 1.0)


def to_float(img: Any) -> np.ndarray:
    """PIL image -> float RGB array in [0, 1]."""
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def to_pil(arr: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


# lighting-invariant inputs a PerceptualEncoder can feed its bases (beside or instead of the photo)
INVARIANT_INPUTS = {"grey_world": grey_world, "chromaticity": chromaticity, "local_contrast": local_contrast}
