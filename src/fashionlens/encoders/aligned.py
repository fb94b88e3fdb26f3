"""The aligned two-tower encoder: frozen base towers + trained projection heads, saved as a run."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.encoders.registry import create_from_config, record_ref, register_run_loader
from fashionlens.errors import InvalidInputError
from fashionlens.manifest import read_manifest, write_manifest

log = logging.getLogger(__name__)


class AlignedEncoder(Encoder):
    """Images and texts into one space: base encoders' features through learned heads.

    A saved run loads its heads on first use (`heads_file` + the `heads_digest` it recorded); until
    then, on a CPU with onnxruntime, the heads run from a cached ONNX export of that digest, so
    embedding a catalog with a trained encoder needs no torch (see encoders/onnx_runtime.py)."""

    modalities = ("image", "text")

    def __init__(self, image_base: Encoder, text_base: Encoder, image_head: Any, text_head: Any,
                 config: dict[str, Any], name: str = "aligned", heads_file: Path | None = None,
                 heads_digest: str | None = None, head_inputs: tuple[int, int] | None = None):
        self.image_base, self.text_base = image_base, text_base
        self._heads = None if image_head is None else (image_head.eval(), text_head.eval())
        self._heads_file, self._digest, self._inputs = heads_file, heads_digest, head_inputs
        self._sessions: dict[str, Any] = {}
        self.config = config
        self.name = name
        self.dim = int(config["dim"])
        # rows per call of the heads; each base tower batches its own calls (a lazy tower is not built for it)
        self.batch_size = 64 if isinstance(image_base, LazyTower) else max(image_base.batch_size, 64)

    @property
    def image_head(self) -> Any:
        return self._torch_heads()[0]

    @property
    def text_head(self) -> Any:
        return self._torch_heads()[1]

    def _torch_heads(self) -> tuple[Any, Any]:
        if self._heads is None:
            self._heads = _load_heads(self._heads_file, self.config, self._inputs)
        return self._heads

    @property
    def preprocess(self) -> Any:  # type: ignore[override]
        """The image tower's, read when asked, so a lazily loaded tower stays unloaded until then."""
        return self.image_base.preprocess

    def project_images(self, features: np.ndarray) -> np.ndarray:
        """Map base image features (already computed, e.g. cached) into the shared space."""
        return self._project("image", features)

    def project_texts(self, features: np.ndarray) -> np.ndarray:
        return self._project("text", features)

    def _project(self, modality: str, feats: np.ndarray) -> np.ndarray:
        from fashionlens.encoders.base import l2_normalize

        feats = np.asarray(feats, dtype=np.float32)
        step = 4096  # rows at a time: the hidden activations of a 40k catalog at once took ~400 MB
        chunks = [feats[i : i + step] for i in range(0, max(len(feats), 1), step)]
        sess = self._head_session(modality)
        if sess is not None:
            return l2_normalize(np.concatenate([sess.run(None, {"features": c})[0] for c in chunks]))
        import torch

        head = self.image_head if modality == "image" else self.text_head
        with torch.inference_mode():
            return l2_normalize(np.concatenate([head(torch.as_tensor(c)).numpy() for c in chunks]))

    def _head_session(self, modality: str) -> Any:
        """An ONNX Runtime session of a saved run's head while its torch heads are not loaded;
        None (torch) for heads trained in this process, FASHIONLENS_RUNTIME=torch or no onnxruntime."""
        import os

        if self._heads is not None or self._digest is None or os.environ.get("FASHIONLENS_RUNTIME") == "torch":
            return None
        if modality not in self._sessions:
            try:
                self._sessions[modality] = self._export_head(modality)
            except ImportError:
                self._sessions[modality] = None
            except Exception as e:  # the torch heads give the same vectors, only slower to load
                log.warning("%s: ONNX export of the %s head failed (%s); running it in torch", self.name, modality, e)
                self._sessions[modality] = None
        return self._sessions[modality]

    def _export_head(self, modality: str) -> Any:
        """The cached ONNX session of one saved head (exported from torch the first time)."""
        from fashionlens.encoders import onnx_runtime as ox

        which = 0 if modality == "image" else 1
        in_dim = self._inputs[which]  # type: ignore[index]
        key = {"kind": "projection-head", "modality": modality, "weights": self._digest, "in": in_dim, **self.config}

        def build(path: Path) -> None:
            import torch

            head = _load_heads(self._heads_file, self.config, self._inputs)[which]
            ox.export(head, (torch.zeros(2, in_dim),), path, ["features"], ["vectors"],
                      {"features": {0: "batch"}, "vectors": {0: "batch"}})

        return ox.cached_session(f"aligned-{modality}-head", key, build)

    def for_serving(self) -> AlignedEncoder:
        """The same heads over the base towers' serving versions (see `Encoder.for_serving`)."""
        img, txt = self.image_base.for_serving(), self.text_base.for_serving()
        if img is self.image_base and txt is self.text_base:
            return self
        out = AlignedEncoder(img, txt, *(self._heads or (None, None)), self.config, self.name,
                             self._heads_file, self._digest, self._inputs)
        out._sessions = self._sessions
        return out

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        return self.project_images(self.image_base.encode_images(images))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.project_texts(self.text_base.encode_texts(texts))

    def fingerprint(self) -> str:
        digest = self._digest if self._heads is None else heads_digest(*self._heads)
        return f"{self.name}|{self.image_base.fingerprint()}|{self.text_base.fingerprint()}|{digest}"

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
            "text_fingerprint": self.text_base.fingerprint(), "heads_digest": heads_digest(self.image_head, self.text_head),
        })


def heads_digest(image_head: Any, text_head: Any) -> str:
    """The heads' part of an aligned encoder's fingerprint: a digest of their weights."""
    h = hashlib.blake2b(digest_size=8)
    for head in (image_head, text_head):
        for v in head.state_dict().values():
            h.update(v.detach().cpu().numpy().astype(np.float32).tobytes())
    return h.hexdigest()


def _load_heads(path: Path | None, cfg: dict[str, Any], inputs: tuple[int, int] | None) -> tuple[Any, Any]:
    """The two torch ProjectionHeads of a saved run's heads.safetensors."""
    from safetensors.torch import load_file

    from fashionlens.encoders.nn import ProjectionHead

    if path is None or inputs is None:
        raise ValueError("an aligned encoder needs its heads or the file they were saved in")
    tensors = load_file(str(path))
    heads = []
    for prefix, in_dim in zip(("image", "text"), inputs):
        head = ProjectionHead(in_dim, cfg["dim"], cfg["hidden"], cfg["head"], cfg.get("dropout", 0.1))
        head.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        heads.append(head.eval())
    return heads[0], heads[1]


def _check_heads_file(path: Path) -> None:
    """Fail now, naming the file, when a run's heads file is unreadable or lacks a tower's head."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = list(f.keys())
    except Exception as e:
        raise InvalidInputError(f"{path}: not a readable safetensors file ({e})") from e
    for prefix in ("image.", "text."):
        if not any(k.startswith(prefix) for k in keys):
            raise InvalidInputError(f"{path}: holds no {prefix[:-1]} head")


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

    def prepare_image(self, img: Any) -> Any:
        return self.real.prepare_image(img)

    def for_serving(self) -> Encoder:
        return self.real.for_serving()

    def card(self) -> ModelCard:
        return self.real.card()


@register_run_loader("aligned")
def load_aligned(root: Path, image_base: Encoder | None = None, text_base: Encoder | None = None) -> AlignedEncoder:
    cfg_path = Path(root) / "encoder.json"
    cfg = read_manifest(root, "aligned")
    config = {k: cfg["config"][k] for k in ("dim", "hidden", "head", "dropout") if k in cfg["config"]}
    inputs = (int(cfg["image_in"]), int(cfg["text_in"]))
    heads_file = Path(root) / "heads.safetensors"
    digest = cfg.get("heads_digest")  # runs saved before it was recorded load their heads now
    if isinstance(digest, str):  # heads load on first use; their file is checked now (its header only)
        _check_heads_file(heads_file)
        heads: tuple[Any, Any] = (None, None)
    else:
        heads = _load_heads(heads_file, config, inputs)
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
    return AlignedEncoder(towers[0], towers[1], heads[0], heads[1], config, name=f"run:{root}",
                          heads_file=heads_file, heads_digest=digest if isinstance(digest, str) else None,
                          head_inputs=inputs)
