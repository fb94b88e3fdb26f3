"""Image encoders whose last blocks were fine-tuned on catalog labels (`categorize --method finetune`),
saved as runs of kind "tuned": encoder.json + weights.safetensors (only the unfrozen weights)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.encoders.registry import create_from_config, record_ref, register_run_loader
from fashionlens.errors import InvalidInputError
from fashionlens.manifest import read_manifest, write_manifest
from fashionlens.utils import atomic_write


class TunedImageEncoder(Encoder):
    """A registry image encoder with its last `unfreeze_blocks` blocks (and everything after) retrained.

    Output: the pooled features, unit norm, like the base encoder's; `fingerprint` hashes the tuned
    weights, so the embedding cache never mixes vectors of two tunings.
    """

    modalities = ("image",)

    def __init__(self, base: Encoder, unfreeze_blocks: int, image_size: int | None = None):
        from fashionlens.encoders.nn import ImageTower, freeze_all_but_last

        self.base, self.unfreeze_blocks = base, int(unfreeze_blocks)
        self.tower = ImageTower(base, image_size)
        self.trainable = freeze_all_but_last(self.tower.model, self.unfreeze_blocks)
        self.tower.eval()
        self.preprocess, self.dim, self.batch_size = self.tower.preprocess, self.tower.out_dim, 64
        self.name = f"{base.name}+tuned"

    def trainable_state(self) -> dict[str, Any]:
        params = dict(self.tower.model.named_parameters())
        return {k: params[k].detach().float().cpu().clone() for k in self.trainable}  # a snapshot, not a view

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        missing = set(self.trainable) - set(state)
        if missing:
            raise InvalidInputError(f"tuned weights lack {len(missing)} tensors, e.g. {sorted(missing)[0]}")
        self.tower.model.load_state_dict(state, strict=False)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        self.tower.eval()
        with torch.inference_mode():
            return self.tower.encode(images).float().cpu().numpy()

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for k, v in sorted(self.trainable_state().items()):
            h.update(k.encode())
            h.update(v.numpy().tobytes())
        pp = ",".join(f"{k}={v}" for k, v in sorted(self.preprocess.to_dict().items()))  # the tuned input size
        return f"tuned|{self.base.name}|{pp}|blocks={self.unfreeze_blocks}|{h.hexdigest()}"

    def card(self) -> ModelCard:
        return ModelCard(name=self.name, modalities=self.modalities, dim=self.dim, preprocess=self.preprocess,
                         source=f"{self.base.name}, last {self.unfreeze_blocks} blocks fine-tuned on catalog labels",
                         pooling="backbone pooling, unit norm")

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with atomic_write(root / "weights.safetensors") as tmp:
            save_file(self.trainable_state(), str(tmp))
        write_manifest(root, "tuned", {"unfreeze_blocks": self.unfreeze_blocks, "image_size": self.preprocess.size},
                       base=record_ref(self.base.name, root))
        return root


@register_run_loader("tuned")
def load_tuned(root: Path, base: Encoder | None = None) -> TunedImageEncoder:
    """Rebuild the base from the registry, freeze it the same way, load the tuned weights (safetensors)."""
    from safetensors.torch import load_file

    root = Path(root)
    meta_path = root / "encoder.json"
    meta = read_manifest(root, "tuned")
    weights = root / "weights.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{root}: weights.safetensors is missing")
    base = base or create_from_config(meta["base"], source=meta_path, field="base")
    enc = TunedImageEncoder(base, meta["config"]["unfreeze_blocks"], meta["config"].get("image_size"))
    enc.load_trainable_state(load_file(str(weights)))
    enc.name = f"run:{root}"
    return enc
