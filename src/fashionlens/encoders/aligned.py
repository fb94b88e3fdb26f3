"""The aligned two-tower encoder: frozen base towers + trained projection heads, saved as a run."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.encoders.registry import create_from_config, record_ref, register_run_loader
from fashionlens.utils import read_json, write_json


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
        self.preprocess = image_base.preprocess
        self.batch_size = max(image_base.batch_size, 64)

    def project_images(self, features: np.ndarray) -> np.ndarray:
        """Map base image features (already computed, e.g. cached) into the shared space."""
        return self._project(self.image_head, features)

    def project_texts(self, features: np.ndarray) -> np.ndarray:
        return self._project(self.text_head, features)

    def _project(self, head: Any, feats: np.ndarray) -> np.ndarray:
        import torch

        from fashionlens.encoders.base import l2_normalize

        with torch.inference_mode():
            return l2_normalize(head(torch.as_tensor(np.asarray(feats, dtype=np.float32))).numpy())

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
        write_json(root / "encoder.json", {
            "kind": "aligned", "name": self.name, "image_encoder": record_ref(self.image_base.name, root),
            "text_encoder": record_ref(self.text_base.name, root), "image_in": self.image_head.skip.in_features,
            "text_in": self.text_head.skip.in_features, **self.config,
        })


@register_run_loader("aligned")
def load_aligned(root: Path, image_base: Encoder | None = None, text_base: Encoder | None = None) -> AlignedEncoder:
    from safetensors.torch import load_file

    from fashionlens.encoders.nn import ProjectionHead

    cfg_path = Path(root) / "encoder.json"
    cfg = read_json(cfg_path)
    tensors = load_file(str(root / "heads.safetensors"))
    heads = []
    for prefix, in_key in (("image", "image_in"), ("text", "text_in")):
        head = ProjectionHead(cfg[in_key], cfg["dim"], cfg["hidden"], cfg["head"], cfg.get("dropout", 0.1))
        head.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        heads.append(head)
    config = {k: cfg[k] for k in ("dim", "hidden", "head", "dropout") if k in cfg}
    return AlignedEncoder(
        image_base or create_from_config(cfg["image_encoder"], source=cfg_path, field="image_encoder"),
        text_base or create_from_config(cfg["text_encoder"], source=cfg_path, field="text_encoder"),
        heads[0], heads[1], config, name=f"run:{root}",
    )
