"""Perceptually aligned encoder: base encoder(s) (+ LoRA-merged weights) + a head trained on
human similarity triplets, saved as a run directory and loaded by `create("run:<dir>")`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess
from fashionlens.encoders.registry import (
    create_from_config,
    record_ref,
    register,
    register_run_loader,
    resolve_ref,
)
from fashionlens.errors import InvalidInputError
from fashionlens.manifest import read_manifest, write_manifest

HEAD_FILE = "head.safetensors"
BACKBONE_FILE = "backbone.safetensors"


class TimmEncoder(Encoder):
    """Pooled features of any timm image model built in code (e.g. a tiny ViT for LoRA tests or a
    local checkpoint); `create("timm", arch=..., ...)`."""

    modalities = ("image",)

    def __init__(self, model: Any, preprocess: Preprocess, name: str, device: str = "auto", batch_size: int = 32,
                 spec: str = ""):
        from fashionlens.encoders.torch_utils import resolve_device

        self.name, self.preprocess, self.batch_size, self.spec = name, preprocess, batch_size, spec
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.dim = int(model.num_features)

    def fingerprint(self) -> str:  # one registry name, many architectures and seeds: caches must not mix them
        return f"{super().fingerprint()}|{self.spec}"

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        from fashionlens.encoders.torch_utils import pixel_batch

        with torch.inference_mode():
            return self.model(pixel_batch(images, self.preprocess).to(self.device)).float().cpu().numpy()


TIMM_CARD = ModelCard(
    name="timm", modalities=("image",), source="any timm architecture built in code (arch=..., timm model kwargs)",
    licence="Apache-2.0 (timm)", pooling="timm pooling",
    notes="random init (seed=...) or local weights=FILE.safetensors; no download (tests, local checkpoints)",
)


@register("timm", TIMM_CARD)
def timm_encoder(arch: str = "vit_tiny_patch16_224", seed: int = 0, weights: str | None = None,
                 size: int | None = None, device: str = "auto", **model_kwargs: Any) -> TimmEncoder:
    """A timm model without a hub download: random init (seeded) or a local safetensors file."""
    import json

    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=0, **model_kwargs)
    if weights is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(weights))
    img = model_kwargs.get("img_size", size or 224)
    pp = Preprocess(size=int(size or img), resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    spec = json.dumps({"arch": arch, "seed": seed, "size": size, "weights": weights, **model_kwargs}, sort_keys=True,
                      default=str)
    if weights is not None:
        spec += f"@{int(Path(weights).stat().st_mtime)}"  # a retrained file under the same path
    return TimmEncoder(model, pp, name=f"timm:{arch}", device=device, spec=spec)


class PerceptualEncoder(Encoder):
    """Features of one base encoder, or several side by side (ensemble), through a trained head.

    config "inputs" (default ["rgb"]): what each base sees, side by side: the photo ("rgb") and/or
    lighting-invariant versions of it (`lighting.INVARIANT_INPUTS`); "pool_views" (default 1): base
    features averaged over the first k of the eight flips / quarter turns (highlights move with the
    light; the material does not).
    """

    modalities = ("image",)

    def __init__(self, bases: list[Encoder], head: Any | None, config: dict[str, Any], name: str = "perceptual"):
        from fashionlens.encoders.lighting import INVARIANT_INPUTS

        self.bases, self.head, self.config, self.name = list(bases), head, dict(config), name
        self.inputs = list(self.config.get("inputs") or ["rgb"])
        self.pool_views = int(self.config.get("pool_views") or 1)
        unknown = sorted(set(self.inputs) - {"rgb", *INVARIANT_INPUTS})
        if unknown or not 1 <= self.pool_views <= 8:
            raise InvalidInputError(f"perceptual encoder: unknown input(s) {unknown} (use rgb, "
                                    f"{', '.join(INVARIANT_INPUTS)}) or pool_views {self.pool_views} not in 1-8")
        self.in_dim = sum(b.dim for b in self.bases) * len(self.inputs)  # the head's input (`features`)
        self.dim = self.in_dim
        if head is not None:  # a low-rank or averaged head changes the width
            from fashionlens.encoders.nn import head_out_dim

            self.dim = head_out_dim(head, self.in_dim)
        self.preprocess = self.bases[0].preprocess
        self.batch_size = max(b.batch_size for b in self.bases)
        self._hash = ""

    def features(self, images: list[Any]) -> np.ndarray:
        """The head's input: per input kind and base, unit-norm features (pooled over flips / turns),
        side by side."""
        from fashionlens.catalog.images import open_image
        from fashionlens.encoders.base import l2_normalize
        from fashionlens.encoders.lighting import INVARIANT_INPUTS, dihedral, to_float, to_pil

        if self.inputs == ["rgb"] and self.pool_views == 1:
            return np.concatenate([b.encode_images(images) for b in self.bases], axis=1)
        arrays = [to_float(open_image(im) if isinstance(im, (str, Path)) else im) for im in images]
        parts = []
        for kind in self.inputs:
            seen = arrays if kind == "rgb" else [INVARIANT_INPUTS[kind](a) for a in arrays]
            views = [[to_pil(dihedral(a, k)) for a in seen] for k in range(self.pool_views)]
            parts += [l2_normalize(np.mean([b.encode_images(v) for v in views], axis=0)) for b in self.bases]
        return np.concatenate(parts, axis=1)

    def project(self, features: np.ndarray) -> np.ndarray:
        """Map already-computed base features (e.g. cached) through the head."""
        if self.head is None:
            return np.asarray(features, dtype=np.float32)
        import torch

        with torch.inference_mode():
            return self.head(torch.as_tensor(np.asarray(features, dtype=np.float32))).numpy()

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        return self.project(self.features(images))

    def fingerprint(self) -> str:
        if not self._hash:
            self._hash = _weights_hash(self)
        return (f"{self.name}|{'+'.join(b.fingerprint() for b in self.bases)}|{self._hash}"
                f"|{'+'.join(self.inputs)}|pool{self.pool_views}")

    def card(self) -> ModelCard:
        mode = self.config.get("mode", "mlp")
        base = self.config.get("base", [])
        base = [base] if isinstance(base, str) else base
        return ModelCard(
            name=self.name, modalities=self.modalities, dim=self.dim, preprocess=self.preprocess,
            source=f"{mode} alignment of {' + '.join(map(str, base))} on similarity triplets",
            pooling="base pooling" + (f" + {self.config.get('head', 'mlp')} head" if self.head is not None else ""),
            notes=f"trained on {self.config.get('triplets_source', 'human')} triplets; "
                  f"val 2AFC {self.config.get('best_val_2afc', float('nan')):.3f}",
        )

    def save(self, path: str | Path) -> None:
        """Run directory: encoder.json + head.safetensors and/or backbone.safetensors (LoRA merged)."""
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        if self.head is not None:
            _save(save_file, {k: v.contiguous() for k, v in self.head.state_dict().items()}, root / HEAD_FILE)
        if self.config.get("mode") == "lora":
            model = self.bases[0].model
            merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
            self.bases[0].model = merged
            _save(save_file, {k: v.contiguous() for k, v in merged.state_dict().items()}, root / BACKBONE_FILE)
        base = self.config.get("base", [])
        base = record_ref(base, root) if isinstance(base, str) else [record_ref(b, root) for b in base]
        refs = {k: self.config[k] for k in ("base_kwargs",) if k in self.config}  # how the base is built
        config = {k: v for k, v in self.config.items() if k not in ("base", "base_kwargs")}
        write_manifest(root, "perceptual", config, name=self.name, base=base, **refs, head=self.head is not None,
                       in_dim=self.in_dim)
        self._hash = ""


def _save(save_file: Any, tensors: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _weights_hash(enc: PerceptualEncoder) -> str:
    import hashlib

    import torch

    h = hashlib.blake2b(digest_size=8)
    modules = ([enc.head] if enc.head is not None else []) + (
        [enc.bases[0].model] if enc.config.get("mode") == "lora" else [])
    for m in modules:
        for v in m.state_dict().values():
            h.update(v.detach().cpu().to(torch.float32).numpy().tobytes())
    return h.hexdigest()


@register_run_loader("perceptual")
def load_perceptual(root: Path) -> PerceptualEncoder:
    """Rebuild the base encoder(s) by name, then load the head / merged backbone weights."""
    from safetensors.torch import load_file

    from fashionlens.encoders.nn import perceptual_head

    root = Path(root)
    cfg_path = root / "encoder.json"
    cfg = read_manifest(root, "perceptual")
    names = cfg["base"] if isinstance(cfg["base"], list) else [cfg["base"]]
    bases = [create_from_config(n, cfg.get("base_kwargs"), source=cfg_path, field="base") for n in names]
    if cfg["config"].get("mode") == "lora":
        bases[0].model.load_state_dict(load_file(str(root / BACKBONE_FILE)))
        bases[0].model.eval()
    head = None
    if cfg.get("head"):
        c = cfg["config"]  # runs saved before head kinds existed hold one MLP head
        head = perceptual_head(int(cfg["in_dim"]), c.get("head", "mlp"), int(c["hidden"]), float(c.get("dropout", 0.0)),
                               int(c.get("rank", 256)), int(c.get("n_heads", 1)))
        head.load_state_dict(load_file(str(root / HEAD_FILE)))
        head.eval()
    config = {**cfg["config"], **{k: cfg[k] for k in ("base_kwargs",) if k in cfg}}
    # in memory, names work from the working directory (as a trained encoder's do); save re-records them
    config["base"] = resolve_ref(cfg["base"], root) if isinstance(cfg["base"], str) else [
        resolve_ref(n, root) for n in cfg["base"]]
    return PerceptualEncoder(bases, head, config, name=f"run:{root}")
