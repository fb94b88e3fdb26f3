"""Embed a catalog's photos on a Ray cluster (Ray Data actor pool), into the same per-encoder cache.

Layout: `<cache>/<slug>-<digest>/image/ray-<blockhash>.parquet` (columns `key`, `vector`), beside the
local engine's `chunk-*.npz` files in the very directory `EmbeddingStore` uses. Keys are the local
engine's ("item_id:content_hash"), so either engine reuses what the other computed.

Fault tolerance is by construction, not by bookkeeping: each block of photos is embedded and written
(atomically) by the actor that computed it, and a block's file name is a hash of its keys. A re-run
lists the shards present, skips their keys and recomputes only what is missing, i.e. the blocks of
a killed worker. Within one run, Ray restarts a dead actor and retries its block (`max_retries`).

Workers build the encoder themselves from its registry name (or a picklable factory): models are
never pickled across processes. Image decoding and the encoder both run in the actors.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.embed.runner import DEFAULT_CACHE
from fashionlens.embed.store import EmbeddingStore, read_shard, write_shard
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.utils import file_hash

EncoderSpec = str | Callable[[], Encoder]
SHARD_GLOB = "ray-*.parquet"


def _build(spec: EncoderSpec) -> Encoder:
    if isinstance(spec, str):
        from fashionlens.encoders.registry import create

        return create(spec)
    return spec()


def _base(encoder: Encoder) -> Encoder:
    """The encoder that actually reads pixels (aligned/projected encoders wrap a base)."""
    while encoder.image_base is not None:
        encoder = encoder.image_base
    return encoder


class ParquetShards:
    """Read side of the Ray shards in one store directory: key -> (file, row)."""

    def __init__(self, folder: str | Path):
        import pyarrow.parquet as pq

        self.dir = Path(folder)
        self._index: dict[str, tuple[Path, int]] = {}
        self._vectors: dict[Path, np.ndarray] = {}
        for f in sorted(self.dir.glob(SHARD_GLOB)):
            for row, key in enumerate(pq.read_table(f, columns=["key"]).column("key").to_pylist()):
                self._index[key] = (f, row)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def files(self) -> list[Path]:
        return sorted(self.dir.glob(SHARD_GLOB))

    def get(self, key: str) -> np.ndarray:
        f, row = self._index[key]
        if f not in self._vectors:
            self._vectors[f] = read_shard(f)[1]
        return self._vectors[f][row]


class BlockEmbedder:
    """Ray Data actor: builds its own encoder once, then embeds and writes one block per row."""

    def __init__(self, spec: EncoderSpec, out_dir: str, batch_size: int | None = None, threads: int = 1):
        import torch

        torch.set_num_threads(threads)
        self.encoder = _base(_build(spec))
        self.out_dir = Path(out_dir)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from fashionlens.catalog.images import ImageError, open_image

        done, failed = [], []
        for name, ids, paths, keys in zip(batch["block"], batch["ids"], batch["paths"], batch["keys"]):
            imgs, ok, bad = [], [], []
            for r, (i, p) in enumerate(zip(ids, paths)):
                try:
                    imgs.append(open_image(str(p)))
                    ok.append(r)
                except ImageError as e:
                    bad.append(f"item {i}: {e}")
            vec = np.zeros((len(keys), self.encoder.dim), dtype=np.float32)
            if imgs:
                vec[ok] = self.encoder.encode_images(imgs, self.batch_size)
            write_shard(self.out_dir / str(name), [str(k) for k in keys], vec)
            done.append(str(name))
            failed.append("\n".join(bad))
        return {"block": np.array(done), "failed": np.array(failed)}


def embed_images_ray(
    encoder: EncoderSpec,
    catalog: Catalog | Sequence[str],
    cache_dir: str | Path = DEFAULT_CACHE,
    address: str | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    block_size: int = 256,
    threads_per_actor: int = 1,
    num_gpus: float | None = None,
    max_retries: int = 3,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) float32 unit vectors of the catalog's photos, computed by a Ray Data actor pool.

    Same result as `embed_images(create(encoder), catalog, cache_dir)`. `encoder` is a registry
    name / `run:<dir>` / `module:factory` string (or a picklable zero-argument factory) that every
    worker builds for itself. `address` is a Ray cluster (`ray://host:10001` or `auto`); None starts
    or reuses a local Ray. `concurrency` actors (default: one per GPU, else one per
    `threads_per_actor` CPUs) each get `num_gpus` (default 1 when the cluster has GPUs).
    `block_size` photos make one shard (the unit of work and of recomputation after a failure).
    `max_retries`: restarts of a killed actor within this run (a re-run resumes anyway).
    """
    driver_encoder = _build(encoder)  # fingerprint, dim, and the projection of aligned encoders
    base = _base(driver_encoder)
    _, vectors = _embed_base(encoder, base, catalog, cache_dir, address, batch_size, concurrency, block_size,
                             threads_per_actor, num_gpus, max_retries, progress)
    return driver_encoder.project_images(vectors) if driver_encoder is not base else vectors


def warm_cache_ray(encoder: str, catalog: Catalog, cache_dir: str | Path = DEFAULT_CACHE,
                   address: str | None = None, **kw: Any) -> int:
    """Fill the embedding cache on Ray so that a following local `embed_images` only reads it.

    This is what `fashionlens index --engine ray` calls before `build_index`; `EmbeddingStore` reads
    the Parquet shards directly. Returns how many photos the cache now holds vectors for.
    """
    base = _base(_build(encoder))
    keys, _ = _embed_base(encoder, base, catalog, cache_dir, address, **kw)
    return len(keys)


def _embed_base(spec: EncoderSpec, base: Encoder, catalog: Catalog | Sequence[str], cache_dir: str | Path,
                address: str | None = None, batch_size: int | None = None, concurrency: int | None = None,
                block_size: int = 256, threads_per_actor: int = 1, num_gpus: float | None = None,
                max_retries: int = 3, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """(keys, vectors of the base encoder): missing keys embedded on Ray, the rest read from the cache."""
    import ray

    if cache_dir is None:
        raise InvalidInputError("the Ray engine needs a cache_dir: its Parquet shards are how workers hand back vectors "
                         "(on a cluster, a folder every node can reach)")
    if "image" not in base.modalities:
        raise InvalidInputError(f"encoder '{base.name}' has no image tower (it encodes: {', '.join(base.modalities)})")
    if isinstance(catalog, Catalog):
        ids, paths = [str(i) for i in catalog.ids], [str(p) for p in catalog.images]
    else:
        paths = [str(p) for p in catalog]
        ids = paths
    keys = [f"{i}:{file_hash(p) if os.path.exists(p) else 'missing'}" for i, p in zip(ids, paths)]

    store = EmbeddingStore(cache_dir, base.fingerprint(), "image")  # local engine's chunks + the dir
    shards = ParquetShards(store.dir)
    seen: set[str] = set()
    todo = [j for j, k in enumerate(keys) if k not in store and k not in shards
            and not (k in seen or seen.add(k))]
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        blocks = []
        for s in range(0, len(todo), block_size):
            pos = todo[s : s + block_size]
            bk = [keys[j] for j in pos]
            digest = hashlib.blake2b("\n".join(bk).encode(), digest_size=10).hexdigest()
            blocks.append({"block": f"ray-{digest}.parquet", "ids": [ids[j] for j in pos],
                           "paths": [paths[j] for j in pos], "keys": bk})
        _run_pool(blocks, spec, store.dir, batch_size, concurrency, threads_per_actor, num_gpus,
                  max_retries, progress, base.name)
        shards = ParquetShards(store.dir)
    out = np.empty((len(keys), base.dim), dtype=np.float32)
    local = [j for j, k in enumerate(keys) if k not in shards]
    if local:
        out[local] = store.get([keys[j] for j in local])
    for j, k in enumerate(keys):
        if k in shards:
            out[j] = shards.get(k)
    return keys, out


def _run_pool(blocks, spec, out_dir, batch_size, concurrency, threads, num_gpus, max_retries, progress, name):
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if num_gpus is None:
        num_gpus = 1 if gpus else 0
    if concurrency is None:
        cpus = ray.cluster_resources().get("CPU", 1)
        concurrency = int(gpus // num_gpus) if num_gpus else max(1, int(cpus // threads))
    concurrency = max(1, min(concurrency, len(blocks)))
    ds = ray.data.from_items(blocks, override_num_blocks=len(blocks))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options this way but has no other way to bound restarts
        # (its default restarts a crashing actor forever)
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            BlockEmbedder, batch_size=1, num_cpus=threads, num_gpus=num_gpus or None,
            # one block per call, a bounded queue per actor: a killed actor loses little
            compute=ray.data.ActorPoolStrategy(size=concurrency, max_tasks_in_flight_per_actor=2),
            fn_constructor_kwargs={"spec": spec, "out_dir": str(out_dir), "batch_size": batch_size,
                                   "threads": threads},
            max_restarts=max_retries, max_task_retries=max_retries,
        )
    rows: Any = ds.iter_rows()
    if progress:
        from fashionlens.progress import track

        rows = track(rows, f"embedding {len(blocks)} blocks of images on Ray ({name}, {concurrency} actors)",
                     total=len(blocks))
    for row in rows:
        for msg in filter(None, str(row["failed"]).split("\n")):
            warnings.warn(f"{msg} — skipped (zero vector)", stacklevel=3)
