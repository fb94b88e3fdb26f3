"""Registry of encoders: `family-size.tag` names, `module:factory` strings, entry points, `run:<dir>`.

Two doors: `create(name, **kwargs)` for names a user passes (command line, Python), which may be
`module:factory` code; `create_from_config(...)` for names read from a saved folder's files, which
builds only registered names and `run:` folders of registered kinds, from data (docs/reliability.md).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.errors import NotFoundError
from fashionlens.manifest import KINDS, identify
from fashionlens.utils import FolderError, require_file

ENTRY_POINT_GROUP = "fashionlens.encoders"
# Family modules register their names on import; they import torch & co. only inside factories.
_FAMILY_MODULES = (
    "fashionlens.encoders.efficientnet",
    "fashionlens.encoders.stages",
    "fashionlens.encoders.colour",
    "fashionlens.encoders.sentence",
    "fashionlens.encoders.clip",
    "fashionlens.encoders.hf_clip",
    "fashionlens.encoders.hf_vision",
    "fashionlens.encoders.hf_text",
    "fashionlens.encoders.resnet",
    "fashionlens.encoders.blip",
    "fashionlens.encoders.git",
    "fashionlens.encoders.perceptual",
)
# Modules holding the built-in run loaders, by the `kind` their encoder.json records. A fixed table:
# the kind is read from a file, so it must never choose what to import.
_RUN_MODULES = {
    "aligned": "fashionlens.encoders.aligned",
    "finetuned": "fashionlens.encoders.finetuned",
    "perceptual": "fashionlens.encoders.perceptual",
    "tuned": "fashionlens.encoders.tuned",
}


class UnknownEncoderError(NotFoundError):
    """Raised for a name the registry does not know; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class UntrustedReferenceError(UnknownEncoderError):
    """A saved folder's file names something loading may not build: code, an unknown run kind, non-data."""


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
            _REGISTRY[ep.name] = _Entry(_entry_point_factory(ep), ModelCard(name=ep.name, modalities=(), source=ep.value))


def _entry_point_factory(ep: metadata.EntryPoint) -> Callable[..., Encoder]:
    def factory(**kwargs: Any) -> Encoder:  # the plugin is imported on first use, not on listing
        return ep.load()(**kwargs)

    return factory


def list_encoders() -> list[ModelCard]:
    """Model cards of every registered encoder, sorted by name."""
    _load_families()
    return [_REGISTRY[k].card for k in sorted(_REGISTRY)]


def accepts(name: str, keyword: str) -> bool:
    """Whether the encoder registered as `name` takes the factory keyword `keyword` (e.g. `size`);
    False for an unregistered name (a `module:factory` or `run:<dir>` is not introspected)."""
    _load_families()
    entry = _REGISTRY.get(name)
    return entry is not None and keyword in inspect.signature(entry.factory).parameters


def create(name: str, **kwargs: Any) -> Encoder:
    """Build an encoder by registry name, `module:factory`, or `run:<dir>` (a trained one).

    For names a user passes; names read from a saved folder go through `create_from_config`."""
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


def create_from_config(name: Any, kwargs: Any = None, *, source: str | Path, field: str,
                       folder: str | Path | None = None) -> Encoder:
    """Build the encoder that field `field` of the saved file `source` names, trusting only data.

    Built: a registered name (a built-in family or an installed entry point) with plain-JSON keyword
    arguments, or `run:<dir>` of a registered run kind, a relative dir resolved against `folder`
    (default: the folder holding `source`; "." for a name already resolved by `resolve_ref`).
    Refused (`UntrustedReferenceError` naming the file and field): anything else, `module:factory`
    above all, which would import and call code chosen by whoever wrote the file.
    """
    _load_families()
    where = f"{source}: field '{field}'"
    if not isinstance(name, str):
        raise UntrustedReferenceError(f"{where} must be an encoder name, not {type(name).__name__} {name!r}")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, dict):
        raise UntrustedReferenceError(f"{where}: arguments must be a JSON object, not {type(kwargs).__name__}")
    _check_data(kwargs, f"{where} arguments")
    if name.startswith("run:"):  # like create(): a run is rebuilt from its own folder, arguments unused
        return load_run_encoder(resolve_run_dir(name[4:], Path(source).parent if folder is None else folder))
    if name not in _REGISTRY:
        raise UntrustedReferenceError(
            f"{where} names '{name}', which is not a registered encoder or a run:<dir>; loading a folder "
            "never imports code named in its files. Pass such an encoder explicitly (in Python, e.g. "
            "SearchIndex(folder, encoder=create(...))) or install it as a 'fashionlens.encoders' entry point.")
    try:
        inspect.signature(_REGISTRY[name].factory).bind(**kwargs)
    except TypeError as e:
        raise UntrustedReferenceError(f"{where}: bad arguments for '{name}': {e}") from None
    return create(name, **kwargs)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_data(value: Any, where: str) -> None:
    """Plain JSON data only (str/number/bool/null, lists, objects with string keys)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise UntrustedReferenceError(f"{where}: key {k!r} is not a string")
            _check_data(v, where)
    elif isinstance(value, list):
        for v in value:
            _check_data(v, where)
    elif not isinstance(value, _JSON_SCALARS):
        raise UntrustedReferenceError(f"{where}: {type(value).__name__} is not plain JSON data")


def record_ref(name: str, folder: str | Path) -> str:
    """How a saved `folder` records encoder `name`: a relative `run:<dir>` (relative to the working
    directory) becomes relative to `folder`, so the folder loads from anywhere; others unchanged."""
    return "run:" + record_path(name[4:], folder) if name.startswith("run:") else name


def record_path(path: str | Path, folder: str | Path) -> str:
    """A working-dir-relative path as `folder` records it: relative to `folder` (absolute stays so)."""
    if Path(path).is_absolute():
        return str(path)
    return os.path.relpath(os.path.abspath(path), os.path.abspath(folder))


def resolve_run_dir(path: str | Path, folder: str | Path) -> Path:
    """A run dir recorded in `folder`'s files: absolute as is, relative against `folder`."""
    p = Path(path)
    if p.is_absolute():
        return p
    here = Path(os.path.normpath(Path(folder) / p))  # lexical, the inverse of record_ref's relpath
    if not here.exists() and p.exists():
        # folders saved before run paths were recorded relative to them hold working-dir-relative paths
        return p
    return here


def resolve_ref(name: str, folder: str | Path) -> str:
    """An encoder name read from `folder`'s files, usable from the working directory."""
    return f"run:{resolve_run_dir(name[4:], folder)}" if name.startswith("run:") else name


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
    """Load an encoder saved by fashionlens training (its directory holds encoder.json).

    Only registered run kinds load; the loaders build the encoders a run names through
    `create_from_config`, so a run folder never runs code, wherever it came from."""
    _load_families()
    root = Path(path)
    other = None if (root / "encoder.json").is_file() else identify(root)
    if other is not None:
        raise FolderError(f"{root} is {KINDS[other].what} ({KINDS[other].file}), not a trained encoder run "
                          "(encoder.json)")
    cfg_path = require_file(root, "encoder.json", "a fashionlens run")
    cfg = json.loads(cfg_path.read_text())
    kind = cfg.get("kind") if isinstance(cfg, dict) else None
    if isinstance(kind, str) and kind not in _RUN_LOADERS and kind in _RUN_MODULES:
        importlib.import_module(_RUN_MODULES[kind])
    if not isinstance(kind, str) or kind not in _RUN_LOADERS:
        known = ", ".join(sorted(set(_RUN_LOADERS) | set(_RUN_MODULES)))
        raise UntrustedReferenceError(f"{cfg_path}: field 'kind' is {kind!r}, not a registered run kind ({known})")
    return _RUN_LOADERS[kind](root)
