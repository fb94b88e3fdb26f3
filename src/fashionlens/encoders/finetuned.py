"""Encoders fine-tuned by `fashionlens train retrieval`, saved as runs of kind "finetuned"."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, l2_normalize
from fashionlens.encoders.registry import create_from_config, record_ref, register_run_loader
from fashionlens.manifest import read_manifest, write_manifest
from fashionlens.utils import atomic_write


class FinetunedEncoder(Encoder):
    """Image and text in one space: two (possibly fine-tuned) towers + projection heads.

    A tower that stayed frozen is exposed as `image_base` / `text_base`, so `fashionlens.embed`
    reuses the base encoder's cached features and runs only the head.
    """

    modalities = ("image", "text")

    def __init__(self, model: Any, config: dict[str, Any], name: str = "finetuned"):
        from fashionlens.encoders.nn import FeatureTower

        self.model = model.eval()
        self.config, self.name, self.dim = config, name, int(config["dim"])
        it, tt = model.image_tower, model.text_tower
        self.image_base = it.encoder if isinstance(it, FeatureTower) else None
        self.text_base = tt.encoder if isinstance(tt, FeatureTower) else None
        self.preprocess = getattr(it, "preprocess", None) or it.encoder.preprocess
        self.batch_size = 64 if self.image_base is not None else 32

    def _head(self, head: Any, feats: Any) -> np.ndarray:
        import torch

        dev = next(head.parameters()).device
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(feats, dtype=np.float32)) if not torch.is_tensor(feats) else feats
            return l2_normalize(head(x.float().to(dev)).cpu().numpy())

    def project_images(self, features: np.ndarray) -> np.ndarray:
        return self._head(self.model.image_head, features)

    def project_texts(self, features: np.ndarray) -> np.ndarray:
        return self._head(self.model.text_head, features)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.project_images(self.model.image_tower.encode(images))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.project_texts(self.model.text_tower.encode(texts))

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for k, v in sorted(self.model.trainable_state().items()):
            h.update(k.encode())
            h.update(v.float().numpy().tobytes())
        towers = f"{self.model.image_tower.encoder.fingerprint()}|{self.model.text_tower.encoder.fingerprint()}"
        return f"finetuned|{towers}|{h.hexdigest()}"

    def card(self) -> ModelCard:
        c = self.config
        return ModelCard(
            name=self.name, modalities=self.modalities, dim=self.dim, preprocess=self.preprocess,
            source=f"fine-tuned {self.model.image_tower.encoder.name} ({c['image_strategy']}) + "
                   f"{self.model.text_tower.encoder.name} ({c['text_strategy']})",
            pooling="projection heads", notes=f"loss {c['loss']}; trained on catalog (name, photo) pairs",
        )

    def save(self, path: str | Path) -> None:
        save_finetuned(path, self.model, self.config)


def save_finetuned(root: str | Path, model: Any, config: dict[str, Any], best_epoch: int | None = None) -> None:
    """weights.safetensors (only the trained weights) + encoder.json (how to rebuild the rest)."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(root / "weights.safetensors") as tmp:
        save_file(model.trainable_state(), str(tmp))
    write_manifest(root, "finetuned", config, image_encoder=record_ref(model.image_tower.encoder.name, root),
                   text_encoder=record_ref(model.text_tower.encoder.name, root), best_epoch=best_epoch)


@register_run_loader("finetuned")
def load_finetuned(root: Path, image_base: Encoder | None = None, text_base: Encoder | None = None) -> FinetunedEncoder:
    """Rebuild the towers from the registry, re-apply the strategy, load the trained weights."""
    from safetensors.torch import load_file

    from fashionlens.encoders.nn import build_dual_encoder

    root = Path(root)
    meta_path = root / "encoder.json"
    meta = read_manifest(root, "finetuned")
    weights = root / "weights.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{root}: weights.safetensors is missing (the run never finished an epoch?)")
    cfg = meta["config"]  # written by RetrievalConfig.to_dict: every key is there
    image_base = image_base or create_from_config(meta["image_encoder"], source=meta_path, field="image_encoder")
    text_base = text_base or create_from_config(meta["text_encoder"], source=meta_path, field="text_encoder")
    model = build_dual_encoder(cfg, image_base, text_base)
    model.load_trainable_state(load_file(str(weights)))
    return FinetunedEncoder(model, cfg, name=f"run:{root}")
