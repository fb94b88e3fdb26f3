"""Embed a catalog's photos or texts: batched, cached, resumable, with a progress bar."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog, ImportIssue, ImportReport
from fashionlens.catalog.images import open_image
from fashionlens.embed.decode import GROUP, MIN_GROUP, decoded_groups
from fashionlens.embed.store import EmbeddingStore
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.progress import counter
from fashionlens.utils import default_cache, file_hash, text_hash

DEFAULT_CACHE = default_cache()

# encode(row positions, need, advance) -> (each encoder's vectors of those rows, {position: reason} of
# the rows not embedded); need[e, r]: encoder e lacks row r (only those rows of its vectors are used);
# advance(n) reports n more rows done, so progress moves within a chunk
EncodeFn = Callable[[list[int], np.ndarray, Callable[[int], None]], tuple[list[np.ndarray], dict[int, str]]]


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
    and a killed run resumes from its last finished chunk. An image that fails to decode gets a
    zero row (every other row has unit norm, see `decoded`): it is reported (a warning with its id
    and reason) on every run and never cached. `embed_catalog_images` leaves such items out instead.
    """
    return _embed_images(encoder, catalog, cache_dir, chunk_size, progress)[0]


def embed_catalog_images(
    encoder: Encoder,
    catalog: Catalog,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    chunk_size: int = 512,
    progress: bool = True,
) -> tuple[Catalog, np.ndarray]:
    """(the catalog without the items whose photo failed to decode, the vectors of the rest).

    What gets indexed or trained on never holds a zero vector; each item left out is reported
    (see `embed_images`) and added to the returned catalog's import report with its reason.
    """
    vectors, failed = _embed_images(encoder, catalog, cache_dir, chunk_size, progress)
    if not failed:
        return catalog, vectors
    keep = np.setdiff1d(np.arange(len(catalog)), list(failed))
    out = catalog.subset(keep)
    ids, rep = catalog.ids, catalog.report
    out.report = ImportReport(rep.source, rep.n_read,
                              [*rep.issues, *(ImportIssue(ids[j], failed[j]) for j in sorted(failed))])
    return out, vectors[keep]


def decoded(vectors: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of an `embed_images` result whose photo was embedded."""
    return np.asarray(vectors).any(axis=1)


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

    def encode(pos: list[int], need: np.ndarray, advance: Callable[[int], None]) -> tuple[list[np.ndarray], dict[int, str]]:
        return [_in_batches(encoder.encode_texts, [items[j] for j in pos], encoder.batch_size, advance)], {}

    return _run([encoder], "text", keys, encode, cache_dir, chunk_size, progress, encoder.name)[0][0]


def _embed_images(encoder: Encoder, catalog: Catalog | Sequence[str], cache_dir: str | Path | None,
                  chunk_size: int, progress: bool) -> tuple[np.ndarray, dict[int, str]]:
    """(vectors with zero rows for failed photos, {row: reason} of those photos)."""
    if encoder.image_base is not None:
        base, failed = _embed_images(encoder.image_base, catalog, cache_dir, chunk_size, progress)
        vectors = encoder.project_images(base)
        vectors[list(failed)] = 0  # a projected zero row is the head's bias, not a marker of failure
        return vectors, failed
    parts = getattr(encoder, "parts", None)
    if parts and any(p.image_base is not None or getattr(p, "parts", None) for p in parts):
        split = [_embed_images(p, catalog, cache_dir, chunk_size, progress) for p in parts]  # nested: part by part
        failed = {k: v for _, f in split for k, v in f.items()}
        vectors = encoder.combine([v for v, _ in split])
        vectors[list(failed)] = 0
        return vectors, failed
    if isinstance(catalog, Catalog):
        ids, paths = catalog.ids, catalog.images
    else:
        paths = [str(p) for p in catalog]
        ids = paths
    keys = [f"{i}:{file_hash(p) if os.path.exists(p) else 'missing'}" for i, p in zip(ids, paths)]
    # a fusion of plain encoders: each part cached under its own fingerprint, each photo decoded once for all
    towers = list(parts) if parts else [encoder]
    # photos per encoder call: up to GROUP, but ~10 calls for a small catalog, so progress moves
    group = min(GROUP, max(MIN_GROUP, -(-len(keys) // 10)))

    def load(job: tuple[str, list[bool]]) -> list[Any]:
        """One decode, then each tower that needs this photo fits it to its own input."""
        img = open_image(job[0])
        return [t.prepare_image(img) if need else None for t, need in zip(towers, job[1])]

    def encode(pos: list[int], need: np.ndarray, advance: Callable[[int], None]) -> tuple[list[np.ndarray], dict[int, str]]:
        outs = [np.zeros((len(pos), t.dim), dtype=np.float32) for t in towers]
        failed: dict[int, str] = {}
        jobs = [(paths[j], need[:, r].tolist()) for r, j in enumerate(pos)]
        # decoded by a thread pool a group ahead of the encoders (fashionlens.embed.decode)
        for ok, imgs, errors in decoded_groups(jobs, load, group):
            for r, e in errors.items():
                j = pos[r]
                failed[j] = str(e).split(": ", 1)[-1]  # the reason, without the path
                warnings.warn(f"item {ids[j]}: {e} — skipped (not embedded)", stacklevel=2)
            advance(len(errors))
            for t, (tower, out) in enumerate(zip(towers, outs)):
                rows = [(r, im[t]) for r, im in zip(ok, imgs) if im[t] is not None]
                if rows:  # one call per group: an int8 encoder calibrates on its first group
                    out[[r for r, _ in rows]] = tower.encode_images([im for _, im in rows])
            advance(len(imgs))
        return outs, failed

    outs, failed = _run(towers, "image", keys, encode, cache_dir, chunk_size, progress, encoder.name)
    if not parts:
        return outs[0], failed
    vectors = encoder.combine(outs)
    vectors[list(failed)] = 0
    return vectors, failed


def _run(encoders: list[Encoder], modality: str, keys: list[str], encode: EncodeFn, cache_dir: str | Path | None,
         chunk_size: int, progress: bool, name: str) -> tuple[list[np.ndarray], dict[int, str]]:
    """Each encoder's vectors of `keys`: cached ones read, the rest computed by `encode` (a row
    missing from any encoder's cache is computed once for all the encoders that miss it)."""
    for e in encoders:
        if modality not in e.modalities:
            raise InvalidInputError(f"encoder '{e.name}' has no {modality} tower (it encodes: {', '.join(e.modalities)})")
    outs = [np.zeros((len(keys), e.dim), dtype=np.float32) for e in encoders]
    stores = [EmbeddingStore(cache_dir, e.fingerprint(), modality) if cache_dir is not None else None for e in encoders]
    for out, store in zip(outs, stores):
        if store is not None:
            cached = [j for j, k in enumerate(keys) if k in store]
            if cached:
                out[cached] = store.get([keys[j] for j in cached])
    # to embed: rows not cached, and zero rows (older versions cached a failed photo as one)
    missing = np.stack([~out.any(axis=1) for out in outs])  # (encoders, rows)
    first: dict[str, int] = {}
    todo = [j for j in np.flatnonzero(missing.any(axis=0)).tolist() if first.setdefault(keys[j], j) == j]
    failed: dict[int, str] = {}
    shown = counter(f"embedding {len(todo)} {modality}s ({name})", len(todo)) if progress and todo else None
    with shown or nullcontext(lambda n: None) as advance:
        for c in (todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)):
            need = missing[:, c]
            vecs, bad = encode(c, need, advance)
            failed |= bad
            for out, store, vec, rows in zip(outs, stores, vecs, need):
                done = [r for r in np.flatnonzero(rows).tolist() if c[r] not in bad]
                out[[c[r] for r in done]] = vec[done]
                if store is not None:  # failures are never cached: the next run reports them again
                    store.put([keys[c[r]] for r in done], vec[done])
    for j, k in enumerate(keys):  # repeated keys (same text, same photo twice) were embedded once
        if first.get(k, j) != j:
            for out in outs:
                out[j] = out[first[k]]
            if first[k] in failed:
                failed[j] = failed[first[k]]
    return outs, failed


def _in_batches(fn: Callable[[list], np.ndarray], items: list, batch_size: int | None,
                advance: Callable[[int], None]) -> np.ndarray:
    """fn over items in the encoder's own batch size (same vectors), reporting each batch done."""
    parts, step = [], batch_size or len(items)
    for i in range(0, len(items), step):
        parts.append(fn(items[i : i + step]))
        advance(len(parts[-1]))
    return np.concatenate(parts)
