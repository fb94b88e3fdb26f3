"""The one `Encoder` interface every backbone, fine-tuned and aligned model implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.errors import InvalidInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocess:
    """How an encoder wants its pixels: lives with the encoder, never in callers."""

    size: int = 224
    resize: str = "pad"  # "pad" keeps the whole garment (letterbox); "crop" = resize short side + centre crop
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    fill: int = 255  # catalog photos sit on white
    # input width when it differs from `size` (the height): e.g. 120 x 160 for 3:4 photos, no white
    # side bands to convolve. None = square; left out of `to_dict`, so square fingerprints never change
    width: int | None = None

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of the input."""
        return self.size, self.width or self.size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["width"] is None:
            del d["width"]
        return d


@dataclass
class ModelCard:
    """What a user needs to pick a backbone."""

    name: str
    modalities: tuple[str, ...]
    dim: int | None = None
    source: str = ""
    licence: str = ""
    pooling: str = ""
    preprocess: Preprocess | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return d


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, eps)


class Encoder:
    """Images and/or texts in, float32 L2-normalised numpy rows out.

    Subclasses set `name`, `dim`, `modalities` and implement `_encode_images` / `_encode_texts`
    on one batch; batching, normalisation and empty inputs are handled here.
    """

    name: str = "encoder"
    dim: int = 0
    modalities: tuple[str, ...] = ()
    batch_size: int = 32
    preprocess: Preprocess | None = None
    # Encoders made of heads on a frozen base expose it, so embedding caches of the base are reused
    # and only the cheap projection runs again (see fashionlens.embed).
    image_base: Encoder | None = None
    text_base: Encoder | None = None

    # ---- public API -------------------------------------------------------------------------
    def encode_images(self, images: Sequence[Any], batch_size: int | None = None) -> np.ndarray:
        """Embed PIL images (or paths). Returns (n, dim) float32, unit norm."""
        self._require("image")
        return self._batched(list(images), self._encode_images, batch_size)

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embed strings. Returns (n, dim) float32, unit norm."""
        self._require("text")
        texts = [str(t) for t in texts]
        return self._batched(texts, self._encode_texts, batch_size)

    def card(self) -> ModelCard:
        return ModelCard(
            name=self.name, modalities=self.modalities, dim=self.dim, preprocess=self.preprocess
        )

    def fingerprint(self) -> str:
        """Identifies weights + preprocessing for caches; override when weights change under a name."""
        if self.preprocess is None:
            return self.name
        pp = ",".join(f"{k}={v}" for k, v in sorted(self.preprocess.to_dict().items()))
        return f"{self.name}|{pp}"

    def for_serving(self) -> Encoder:
        """An equivalent encoder (same vectors within float rounding) built for many small requests,
        e.g. a text tower running in ONNX Runtime. Default: this encoder itself."""
        return self

    def load_image(self, src: Any) -> Any:
        """One photo (a path) as `encode_images` takes it: decoded, and for encoders that can,
        already fitted to their input size. Runs in the decode threads of `fashionlens.embed`, so
        the per-photo work stays off the encoder's loop; raises `ImageError` for a bad photo."""
        from fashionlens.catalog.images import open_image

        return self.prepare_image(open_image(src))

    def prepare_image(self, img: Any) -> Any:
        """A decoded RGB photo as `encode_images` takes it (default: as is; encoders with a fixed
        input size fit it here). Fused towers share one decode this way, each fitting its own copy."""
        return img

    def project_images(self, features: np.ndarray) -> np.ndarray:
        """Map `image_base` features into this encoder's space (only for encoders with a base)."""
        raise NotImplementedError(f"{self.name} has no image base to project from")

    def project_texts(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} has no text base to project from")

    def save(self, path: str | Path) -> None:  # pragma: no cover - only trainable encoders
        raise NotImplementedError(f"{self.name} cannot be saved; it is loaded from its source")

    # ---- to implement -----------------------------------------------------------------------
    def _encode_images(self, images: list[Any]) -> np.ndarray:
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    # ---- helpers ----------------------------------------------------------------------------
    def _require(self, modality: str) -> None:
        if modality not in self.modalities:
            raise InvalidInputError(
                f"encoder '{self.name}' has no {modality} tower (it encodes: {', '.join(self.modalities)})"
            )

    def _batched(self, items: list[Any], fn: Any, batch_size: int | None) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = batch_size or self.batch_size
        out = [np.asarray(fn(items[i : i + bs]), dtype=np.float32) for i in range(0, len(items), bs)]
        return l2_normalize(np.concatenate(out, axis=0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, modalities={self.modalities})"
