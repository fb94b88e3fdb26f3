"""Trained alignment heads cached by what they were trained on, so an unchanged rebuild skips training.

An entry lives in `<embedding cache>/alignments/<key>/`, inside the embedding cache root rather than
beside it: the heads are derived from the cached features, so they move with `FASHIONLENS_CACHE`,
are cleared with it, and a private cache (a test session's temporary one) never shares entries
with another. The key digests everything `train_alignment` sees: both encoders' fingerprints,
every item's id, photo content hash, name and label value, the AlignConfig, this file's format
version and the source of the training code (an edit to it retrains rather than reusing stale heads).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.encoders.base import Encoder
from fashionlens.train.config import AlignConfig
from fashionlens.utils import file_hash, read_json

ALIGNMENT_FORMAT = 1  # bump when an entry's files or meaning change
TRAINING_CODE = ("fashionlens.train.align", "fashionlens.train.engine", "fashionlens.train.losses", "fashionlens.train.config",
                 "fashionlens.encoders.nn")
ENTRY_FILES = ("heads.safetensors", "encoder.json", "metrics.json")


def alignment_key(image_encoder: Encoder, text_encoder: Encoder, catalog: Catalog, label_columns: list[str],
                  config: AlignConfig) -> str:
    """Hex digest of the alignment's inputs: equal keys train equal heads."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"format": ALIGNMENT_FORMAT, "image": image_encoder.fingerprint(),
                         "text": text_encoder.fingerprint(), "label_columns": label_columns,
                         "config": config.to_dict()}, sort_keys=True).encode())
    for mod in TRAINING_CODE:
        h.update(Path(importlib.util.find_spec(mod).origin).read_bytes())
    labels = (catalog.df[label_columns].astype(str).agg("|".join, axis=1).to_numpy() if label_columns
              else np.full(len(catalog), ""))
    for item_id, image, text, label in zip(catalog.ids, catalog.images, catalog.texts, labels, strict=True):
        photo = file_hash(image) if os.path.exists(image) else "missing"
        h.update(json.dumps([item_id, photo, text, label]).encode())
    return h.hexdigest()


def entry_dir(cache_dir: str | Path | None, key: str) -> Path | None:
    """Where the entry of `key` lives; None when caching is off (no embedding cache)."""
    return None if cache_dir is None else Path(cache_dir) / "alignments" / key


def load_entry(entry: Path | None, image_encoder: Encoder, text_encoder: Encoder) -> tuple[Any, dict] | None:
    """(aligned encoder, training history) of a complete entry, or None to train (a broken one warns)."""
    from fashionlens.encoders.aligned import load_aligned

    if entry is None or not all((entry / f).is_file() for f in ENTRY_FILES):
        return None
    try:
        return load_aligned(entry, image_encoder, text_encoder), read_json(entry / "metrics.json")
    except Exception as e:  # any unreadable entry is retrained, never fatal
        warnings.warn(f"cached alignment {entry} is unreadable ({e}); retraining", stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def store_entry(entry: Path | None, trained: Path) -> None:
    """Copy a saved alignment folder into the cache atomically: a reader sees all of it or nothing."""
    if entry is None:
        return
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        for f in ENTRY_FILES:
            shutil.copy2(trained / f, tmp / f)
        os.replace(tmp, entry)
    except OSError:
        if not entry.is_dir():  # else a concurrent build stored the same heads first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
