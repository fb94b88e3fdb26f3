"""The aligned two-tower encoder: frozen base towers + trained projection heads, saved as a run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.encoders.registry import create_from_config, record_ref, register_run_loader
from fashionlens.manifest import read_manifest, write_manifest

log = logging.getLogger(__name__)


class AlignedEncoder(Encoder):
    """Images and texts into one space: base encoders' features through learned heads."""

    modalities = ("image", "text")

    def __init__(self, image_base: Encoder, text_base: Encoder, image_head: Any, text_head: Any,
                 config: dict[str, Any], name: str = "aligned"):
        self.image_base, self.text_base = image_base, text_base
        self.image_head, self.text_head = image_head.eval(), text_head.eval()
        self.config = config
        self.name = name
        self.dim = int(config["dim"])
        # rows per call of the heads; each base tower batches its own calls (a lazy tower is not built for it)
        self.batch_size = 64 if isinstance(image_base, LazyTower) else max(image_base.batch_size, 64)

    @property
    def preprocess(self) -> Any:  # type: ignore[override]
        """The image tower's, read when asked, so a lazily loaded tower stays unloaded until then."""
        return self.image_base.preprocess

    def project_images(self, features: np.ndarray) -> np.ndarray:
        """Map base image features (already computed, e.g. cached) into the shared space."""
        return self._project(self.image_head, features)

    def project_texts(self, features: np.ndarray) -> np.ndarray:
        return self._project(self.text_head, features)

    def _project(self, head: Any, feats: np.ndarray) -> np.ndarray:
        import torch

        from fashionlens.encoders.base import l2_normalize

        feats = np.asarray(feats, dtype=np.float32)
        step = 4096  # rows at a time: the hidden activations of a 40k catalog at once took ~400 MB
        with torch.inference_mode():
            parts = [head(torch.as_tensor(feats[i : i + step])).numpy() for i in range(0, max(len(feats), 1), step)]
        return l2_normalize(np.concatenate(parts))

    def for_serving(self) -> AlignedEncoder:
        """The same heads over the base towers' serving versions (see `Encoder.for_serving`)."""
        img, txt = self.image_base.for_serving(), self.text_base.for_serving()
        if img is self.image_base and txt is self.text_base:
            return self
        return AlignedEncoder(img, txt, self.image_head, self.text_head, self.config, self.name)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        return self.project_images(self.image_base.encode_images(images))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.project_texts(self.text_base.encode_texts(texts))

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for head in (self.image_head, self.text_head):
            for v in head.state_dict().values():
                h.update(v.detach().cpu().numpy().astype(np.float32).tobytes())
        return f"{self.name}|{self.image_base.fingerprint()}|{self.text_base.fingerprint()}|{h.hexdigest()}"

    def card(self) -> ModelCard:
        return ModelCard(
            name=self.name, modalities=self.modalities, dim=self.dim, preprocess=self.preprocess,
            source=f"trained heads on {self.image_base.name} + {self.text_base.name}",
            pooling="projection heads", notes="two-tower alignment trained on the catalog's (name, photo) pairs",
        )

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        tensors = {f"image.{k}": v.contiguous() for k, v in self.image_head.state_dict().items()}
        tensors |= {f"text.{k}": v.contiguous() for k, v in self.text_head.state_dict().items()}
        save_file(tensors, str(root / "heads.safetensors.tmp"))
        (root / "heads.safetensors.tmp").replace(root / "heads.safetensors")
        write_manifest(root, "aligned", self.config, **{
            "name": self.name, "image_encoder": record_ref(self.image_base.name, root),
            "text_encoder": record_ref(self.text_base.name, root), "image_in": self.image_head.skip.in_features,
            "text_in": self.text_head.skip.in_features, "image_fingerprint": self.image_base.fingerprint(),
            "text_fingerprint": self.text_base.fingerprint(),
        })


class LazyTower(Encoder):
    """A saved run's base tower, built on first use: `index` with a trained encoder never loads
    its text tower, `search` never loads its image tower. Its fingerprint (recorded when the run
    was saved) is known without loading, so embedding caches are found without it."""

    def __init__(self, build: Any, name: str, fingerprint: str, modality: str, dim: int):
        self._build, self._real = build, None
        self.name, self._fingerprint, self.modalities, self.dim = name, fingerprint, (modality,), dim

    @property
    def real(self) -> Encoder:
        if self._real is None:
            self._real = self._build()
            if self._real.fingerprint() != self._fingerprint:
                log.warning("tower %s now has fingerprint %s, not %s as when its run was saved",
                            self.name, self._real.fingerprint(), self._fingerprint)
        return self._real

    def fingerprint(self) -> str:
        return self._fingerprint

    def __getattr__(self, attr: str) -> Any:  # .model, .tokenizer, ...: the real tower's
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.real, attr)

    preprocess = property(lambda self: self.real.preprocess)  # type: ignore[assignment]
    batch_size = property(lambda self: self.real.batch_size)  # type: ignore[assignment]

    def encode_images(self, images: Any, batch_size: int | None = None) -> np.ndarray:
        return self.real.encode_images(images, batch_size)

    def encode_texts(self, texts: Any, batch_size: int | None = None) -> np.ndarray:
        return self.real.encode_texts(texts, batch_size)

    def load_image(self, src: Any) -> Any:
        return self.real.load_image(src)

    def for_serving(self) -> Encoder:
        return self.real.for_serving()

    def card(self) -> ModelCard:
        return self.real.card()


@register_run_loader("aligned")
def load_aligned(root: Path, image_base: Encoder | None = None, text_base: Encoder | None = None) -> AlignedEncoder:
    from safetensors.torch import load_file

    from fashionlens.encoders.nn import ProjectionHead

    cfg_path = Path(root) / "encoder.json"
    cfg = read_manifest(root, "aligned")
    config = {k: cfg["config"][k] for k in ("dim", "hidden", "head", "dropout") if k in cfg["config"]}
    tensors = load_file(str(root / "heads.safetensors"))
    heads = []
    for prefix, in_key in (("image", "image_in"), ("text", "text_in")):
        head = ProjectionHead(cfg[in_key], config["dim"], config["hidden"], config["head"], config.get("dropout", 0.1))
        head.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        heads.append(head)
    towers = []
    for modality, base in (("image", image_base), ("text", text_base)):
        field = f"{modality}_encoder"

        def build(ref: Any = cfg[field], field: str = field) -> Encoder:
            return create_from_config(ref, source=cfg_path, field=field)

        ref = cfg[field]
        if (base is None and isinstance(cfg.get(f"{modality}_fingerprint"), str) and isinstance(ref, str)
                and not ref.startswith("run:")):  # registry names; runs saved before this field: eager
            base = LazyTower(build, ref, cfg[f"{modality}_fingerprint"], modality, int(cfg[f"{modality}_in"]))
        towers.append(base or build())
    return AlignedEncoder(towers[0], towers[1], heads[0], heads[1], config, name=f"run:{root}")
