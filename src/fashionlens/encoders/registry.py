"""Registry of encoders: `family-size.tag` names, `module:factory` strings, entry points, `run:<dir>`."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.utils import require_file

ENTRY_POINT_GROUP = "fashionlens.encoders"
# Family modules register their names on import; they import torch & co. only inside factories.
_FAMILY_MODULES = (
    "fashionlens.encoders.efficientnet",
    "fashionlens.encoders.colour",
    "fashionlens.encoders.sentence",
    "fashionlens.encoders.clip",
    "fashionlens.encoders.hf_clip",
    "fashionlens.encoders.hf_vision",
    "fashionlens.encoders.hf_text",
    "fashionlens.encoders.resnet",
    "fashionlens.encoders.blip",
    "fashionlens.encoders.git",
)


class UnknownEncoderError(KeyError):
    """Raised for a name the registry does not know; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass
class _Entry:
    factory: Callable[..., Encoder]
    card: ModelCard


_REGISTRY: dict[str, _Entry] = {}
_RUN_LOADERS: dict[str, Callable[[Path], Encoder]] = {}
_loaded = False


def register(name: str, card: ModelCard | None = None) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Decorator: register `factory(**kwargs) -> Encoder` under `name` with its model card."""

    def deco(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _REGISTRY[name] = _Entry(factory, card or ModelCard(name=name, modalities=()))
        return factory

    return deco


def register_run_loader(kind: str) -> Callable[[Callable[[Path], Encoder]], Callable[[Path], Encoder]]:
    """Decorator: load a trained encoder saved in a run directory whose encoder.json has this kind."""

    def deco(fn: Callable[[Path], Encoder]) -> Callable[[Path], Encoder]:
        _RUN_LOADERS[kind] = fn
        return fn

    return deco


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _FAMILY_MODULES:
        importlib.import_module(mod)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = _Entry(lambda _ep=ep, **kw: _ep.load()(**kw),
                                        ModelCard(name=ep.name, modalities=(), source=ep.value))


def list_encoders() -> list[ModelCard]:
    """Model cards of every registered encoder, sorted by name."""
    _load_families()
    return [_REGISTRY[k].card for k in sorted(_REGISTRY)]


def create(name: str, **kwargs: Any) -> Encoder:
    """Build an encoder by registry name, `module:factory`, or `run:<dir>` (a trained one)."""
    _load_families()
    if name.startswith("run:"):
        return load_run_encoder(name[4:])
    if name in _REGISTRY:
        enc = _REGISTRY[name].factory(**kwargs)
        enc.name = name if not kwargs.get("weights") else enc.name
        return enc
    if ":" in name and not name.startswith(("http:", "https:")):
        mod_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise UnknownEncoderError(f"cannot import encoder factory '{name}': {e}") from e
        enc = factory(**kwargs)
        if not isinstance(enc, Encoder):
            raise TypeError(f"'{name}' returned {type(enc).__name__}, not a fashionlens Encoder")
        return enc
    raise _unknown(name)


def check_name(name: str) -> None:
    """Fail fast (before any work) on a name `create` could never resolve."""
    _load_families()
    if name not in _REGISTRY and ":" not in name:
        raise _unknown(name)


def _unknown(name: str) -> UnknownEncoderError:
    known = ", ".join(sorted(_REGISTRY))
    return UnknownEncoderError(
        f"unknown encoder '{name}'. Known encoders: {known}. "
        "Also accepted: 'run:<dir>' (a trained run) and 'package.module:factory'."
    )


def load_run_encoder(path: str | Path) -> Encoder:
    """Load an encoder saved by fashionlens training (its directory holds encoder.json)."""
    _load_families()
    root = Path(path)
    cfg_path = require_file(root, "encoder.json", "a fashionlens run")
    kind = json.loads(cfg_path.read_text())["kind"]
    if kind not in _RUN_LOADERS:
        importlib.import_module(f"fashionlens.encoders.{kind}")
    if kind not in _RUN_LOADERS:
        raise UnknownEncoderError(f"{root}: unknown trained-encoder kind '{kind}'")
    return _RUN_LOADERS[kind](root)
