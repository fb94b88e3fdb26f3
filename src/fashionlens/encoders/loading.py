"""Shared plumbing for the hub-backed encoder families (CLIP, DINO, BERT, BLIP, GIT, ResNet).

Imported by the family modules at registration time, so torch & co. are imported only inside
functions: `import fashionlens` must stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess

T = TypeVar("T")
E = TypeVar("E", bound="TorchEncoder")

# Files `fashionlens download` skips: other frameworks' copies of the same weights.
NON_TORCH_FILES = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "*.mlmodel", "onnx/*",
                   "openvino/*", "coreml/*", "tf_model*", "flax_model*", "rust_model*"]


def source_of(weights: str | Path | None, hub_id: str) -> str:
    """A local weights path when given, else the hub id users get by default."""
    return str(weights) if weights is not None else hub_id


def is_local(source: str) -> bool:
    return Path(source).expanduser().exists()


def hub_load(name: str, source: str, fn: Callable[[], T]) -> T:
    """Run a library loader; a hub miss (offline, no cache, no network) becomes one clear line.

    Errors from a local path are the user's file and are re-raised unchanged.
    """
    if not is_local(source) and (source.startswith(("/", "./", "../", "~")) or source.endswith(
            (".safetensors", ".bin", ".pt", ".pth"))):
        raise FileNotFoundError(f"weights for '{name}' not found: {source}")
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return fn()
    # what a hub miss raises: transformers/timm OSError (LocalEntryNotFoundError is one),
    # open_clip RuntimeError/ValueError wrapping it, HfHubHTTPError for network/HTTP failures
    except (OSError, RuntimeError, ValueError, HfHubHTTPError):
        if is_local(source):
            raise
        from fashionlens.encoders.hub import offline_error

        # `from None`: the hub client's long trace says nothing the one line does not
        raise offline_error(name, source) from None


def hf_preprocess(source: str, default: Preprocess, resize: str = "pad") -> Preprocess:
    """Resolution and normalisation from the checkpoint's own image-processor config."""
    from transformers import AutoImageProcessor

    try:
        proc = AutoImageProcessor.from_pretrained(source)
    except (OSError, ValueError):  # checkpoint without preprocessor_config.json
        return Preprocess(**{**default.to_dict(), "resize": resize})
    size = getattr(proc, "crop_size", None) if getattr(proc, "do_center_crop", False) else None
    size = size or getattr(proc, "size", None) or {}
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or default.size
    elif not isinstance(size, int):  # transformers 5 SizeDict
        size = getattr(size, "height", None) or getattr(size, "shortest_edge", None) or default.size
    mean = tuple(float(v) for v in (proc.image_mean or default.mean))
    std = tuple(float(v) for v in (proc.image_std or default.std))
    return Preprocess(size=int(size), resize=resize, mean=mean, std=std)  # type: ignore[arg-type]


def with_source(enc: E, source: str) -> E:
    """Put local weights (path + newest mtime) in the fingerprint, so embedding caches never mix
    two checkpoints loaded under one registry name. Hub ids are pinned by the name already."""
    p = Path(source).expanduser()
    if source and p.exists():
        files = [p, *p.iterdir()] if p.is_dir() else [p]
        enc.weights_id = f"{p.resolve()}@{max(int(f.stat().st_mtime) for f in files)}"
    return enc


class TorchEncoder(Encoder):
    """An `Encoder` over a torch module: device `auto`, half precision on GPUs only, no grad."""

    weights_id = ""

    def _setup(self, name: str, model: Any, preprocess: Preprocess | None, device: str,
               precision: str, batch_size: int) -> None:
        from fashionlens.encoders.torch_utils import autocast_dtype, resolve_device

        self.name = name
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.amp_dtype = autocast_dtype(self.device, precision)
        self.model = model.eval().to(self.device)

    def fingerprint(self) -> str:
        base = super().fingerprint()
        return f"{base}|weights={self.weights_id}" if self.weights_id else base

    @contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.amp_dtype is None:
                yield
            else:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    yield

    def _pixels(self, images: list[Any]) -> Any:
        from fashionlens.encoders.torch_utils import pixel_batch

        assert self.preprocess is not None
        return pixel_batch(images, self.preprocess).to(self.device)

    def _tokens(self, tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Any]:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    @staticmethod
    def _numpy(t: Any) -> np.ndarray:
        return t.float().cpu().numpy()


def features(out: Any) -> Any:
    """transformers 5 returns an output object from get_*_features; 4.x returned the tensor."""
    return out if hasattr(out, "float") else out.pooler_output


def masked_mean(hidden: Any, mask: Any) -> Any:
    """Mean over real tokens only, so padding (and so batch composition) changes nothing."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def loaded_card(card: ModelCard | None, enc: Encoder) -> ModelCard:
    """The registered card with what the loaded model really has (dim, preprocessing)."""
    if card is None:  # loaded under another name, e.g. a user's own checkpoint
        return ModelCard(name=enc.name, modalities=enc.modalities, dim=enc.dim, preprocess=enc.preprocess)
    return replace(card, name=enc.name, dim=enc.dim, preprocess=enc.preprocess)
