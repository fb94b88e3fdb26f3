"""Embed a catalog's photos or texts: batched, cached, resumable, with a progress bar."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.embed.decode import decoded_groups
from fashionlens.embed.store import EmbeddingStore
from fashionlens.encoders.base import Encoder
from fashionlens.progress import track
from fashionlens.utils import default_cache, file_hash, text_hash

DEFAULT_CACHE = default_cache()


def embed_images(
    encoder: Encoder,
    catalog: Catalog | Sequence[str],
    cache_dir: str | Path | None = DEFAULT_CACHE,
    chunk_size: int = 512,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) float32 unit vectors of the catalog's photos (or of a list of image paths).

    Only `chunk_size` decoded images are held at once. With a cache, vectors are keyed by
    (encoder fingerprint, item id, file content hash): a re-run embeds only new or changed items
    and a killed run resumes from its last finished chunk. An image that fails to decode is reported
    (warning with its id) and gets a zero vector.
    """
    if encoder.image_base is not None:
        return encoder.project_images(embed_images(encoder.image_base, catalog, cache_dir, chunk_size, progress))
    if isinstance(catalog, Catalog):
        ids, paths = catalog.ids, catalog.images
    else:
        paths = [str(p) for p in catalog]
        ids = paths
    keys = [f"{i}:{file_hash(p) if os.path.exists(p) else 'missing'}" for i, p in zip(ids, paths)]

    def encode(pos: list[int]) -> np.ndarray:
        out = np.zeros((len(pos), encoder.dim), dtype=np.float32)
        # decoded by a thread pool a group ahead of the encoder (fashionlens.embed.decode)
        for ok, imgs, errors in decoded_groups([paths[j] for j in pos], encoder.load_image):
            for r, e in errors.items():
                warnings.warn(f"item {ids[pos[r]]}: {e} — skipped (zero vector)", stacklevel=3)
            if imgs:
                out[ok] = encoder.encode_images(imgs)
        return out

    return _run(encoder, "image", keys, encode, cache_dir, chunk_size, progress)


def embed_texts(
    encoder: Encoder,
    texts: Catalog | Sequence[str],
    cache_dir: str | Path | None = DEFAULT_CACHE,
    chunk_size: int = 2048,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) float32 unit vectors of texts (a catalog's names, or any list of strings)."""
    if encoder.text_base is not None:
        return encoder.project_texts(embed_texts(encoder.text_base, texts, cache_dir, chunk_size, progress))
    items = texts.texts if isinstance(texts, Catalog) else [str(t) for t in texts]
    keys = [text_hash(t) for t in items]
    return _run(encoder, "text", keys, lambda pos: encoder.encode_texts([items[j] for j in pos]),
                cache_dir, chunk_size, progress)


def _run(encoder, modality, keys, encode, cache_dir, chunk_size, progress) -> np.ndarray:
    if modality not in encoder.modalities:
        raise ValueError(f"encoder '{encoder.name}' has no {modality} tower (it encodes: {', '.join(encoder.modalities)})")
    if cache_dir is None:
        chunks = [list(range(i, min(i + chunk_size, len(keys)))) for i in range(0, len(keys), chunk_size)]
        it = track(chunks, f"embedding {modality}s ({encoder.name})") if progress else chunks
        parts = [encode(c) for c in it]
        return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)
    store = EmbeddingStore(cache_dir, encoder.fingerprint(), modality)
    todo = store.missing(keys)
    seen: set[str] = set()
    todo = [j for j in todo if not (keys[j] in seen or seen.add(keys[j]))]  # duplicate texts once
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    it = track(chunks, f"embedding {len(todo)} {modality}s ({encoder.name})") if progress else chunks
    for c in it:
        store.put([keys[j] for j in c], encode(c))
    return store.get(keys)
