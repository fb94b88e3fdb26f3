"""Why two photos are similar: per-region cosine maps from an image model's feature map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fashionlens.encoders.base import Encoder, Preprocess
from fashionlens.errors import InvalidInputError
from fashionlens.explore.grids import get_font


@dataclass
class SimilarityMaps:
    """For photo A, each cell's cosine to B's pooled embedding (`map_a`), and vice versa (`map_b`)."""

    map_a: np.ndarray  # (h, w)
    map_b: np.ndarray
    cosine: float  # cosine of the two pooled embeddings
    rgb_a: np.ndarray  # (s, s, 3) in [0, 1]: the model's letterboxed inputs
    rgb_b: np.ndarray


def encoder_feature_fn(encoder: Encoder,
                       reshape_transform: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    """Feature-map function of an encoder whose torch network (`encoder.model`) has timm's
    `forward_features`; tokens (ViT) go through `reshape_transform` into (B, C, h, w)."""
    model = getattr(encoder, "model", None)
    if model is None or not hasattr(model, "forward_features"):
        raise InvalidInputError(f"encoder '{encoder.name}' exposes no torch feature map (needs .model.forward_features); "
                         "pass feature_fn= returning (B, C, h, w) instead")

    def fn(x: Any) -> Any:
        f = model.forward_features(x.to(next(model.parameters()).device))
        return reshape_transform(f) if reshape_transform is not None else f

    return fn


def similarity_maps(feature_fn: Callable[[Any], Any], img_a: Any, img_b: Any, preprocess: Preprocess) -> SimilarityMaps:
    """Cell-wise cosine maps of two photos (paths or PIL) under `feature_fn(x) -> (B, C, h, w)`.

    Pooling is the mean over cells (global average, as the CNN encoders pool), so the two maps show
    which regions of each photo carry the match to the other photo as a whole.
    """
    import torch

    from fashionlens.encoders.torch_utils import pixel_batch

    x = pixel_batch([img_a, img_b], preprocess)
    with torch.inference_mode():
        f = feature_fn(x).float().cpu()
    if f.ndim != 4:
        raise ValueError(f"feature_fn must return (B, C, h, w), got shape {tuple(f.shape)}")
    cells = torch.nn.functional.normalize(f.flatten(2), dim=1)  # (2, C, h*w)
    pooled = torch.nn.functional.normalize(f.mean(dim=(2, 3)), dim=1)  # (2, C)
    h, w = f.shape[2:]
    map_a = (pooled[1] @ cells[0]).reshape(h, w).numpy()
    map_b = (pooled[0] @ cells[1]).reshape(h, w).numpy()
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    rgb = (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return SimilarityMaps(map_a, map_b, float(pooled[0] @ pooled[1]), rgb[0], rgb[1])


def render_similarity(m: SimilarityMaps, title: str = "", size: int = 224) -> Image.Image:
    """A | A's map | B's map | B, side by side; both maps share one colour scale so they compare."""
    from fashionlens.explore.gradcam import overlay

    lo = float(min(m.map_a.min(), m.map_b.min()))
    hi = float(max(m.map_a.max(), m.map_b.max()))

    def scaled(mp: np.ndarray) -> np.ndarray:
        return (mp - lo) / max(hi - lo, 1e-6)

    def photo(rgb: np.ndarray) -> Image.Image:
        return Image.fromarray((rgb * 255).round().astype(np.uint8)).resize((size, size))

    tiles = [photo(m.rgb_a), overlay(m.rgb_a, scaled(m.map_a)).resize((size, size)),
             overlay(m.rgb_b, scaled(m.map_b)).resize((size, size)), photo(m.rgb_b)]
    head = 22
    out = Image.new("RGB", (4 * size + 30, size + head), (255, 255, 255))
    for k, t in enumerate(tiles):
        out.paste(t, (k * size + (30 if k >= 2 else 0), head))
    text = f"{title}  cosine {m.cosine:.3f}; cell cosines {lo:.2f} (blue) .. {hi:.2f} (red)".strip()
    ImageDraw.Draw(out).text((4, 4), text, fill=(0, 0, 0), font=get_font(13))
    return out


def why_similar(encoder: Encoder, img_a: Any, img_b: Any, out_path: str | Path | None = None,
                title: str = "", feature_fn: Callable[[Any], Any] | None = None) -> Image.Image:
    """Similarity maps of a search hit rendered side by side; saved as PNG when `out_path` is given."""
    if encoder.preprocess is None:
        raise InvalidInputError(f"encoder '{encoder.name}' has no image preprocessing")
    fn = feature_fn or encoder_feature_fn(encoder)
    img = render_similarity(similarity_maps(fn, img_a, img_b, encoder.preprocess), title)
    if out_path is not None:
        from fashionlens.utils import atomic_write

        with atomic_write(out_path) as tmp:
            img.save(tmp, format="PNG")
    return img
