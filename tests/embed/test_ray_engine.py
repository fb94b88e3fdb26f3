"""`embed_images_ray` on a local 2-CPU Ray: same vectors as the local engine, resumes after a killed worker."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fashionlens.embed import embed_images
from fashionlens.embed.ray_engine import ParquetShards, embed_images_ray, warm_cache_ray
from fashionlens.embed.store import EmbeddingStore
from fashionlens.encoders.base import Encoder
from fashionlens.index import ExactIndex
from fashionlens.utils import file_hash
from tests.conftest import write_image

ray = pytest.importorskip("ray")
# workers cannot import this test module: ship its classes by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


class Dying(Encoder):
    """Toy encoder (mean RGB); its `die_on`-th batch kills the process unless the marker file exists."""

    name = "dying-mean-colour"
    dim = 4
    modalities = ("image",)
    batch_size = 64

    def __init__(self, marker: str | None, die_on: int):
        self.marker, self.die_on, self.calls = marker, die_on, 0

    def _encode_images(self, images):
        self.calls += 1
        if self.marker and self.calls == self.die_on and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)  # a worker killed mid-run: no exception, no cleanup
        return np.array([[*np.asarray(im, dtype=float).mean(axis=(0, 1)), 1.0] for im in images])


class DyingFactory:
    """Picklable zero-argument factory: each Ray actor builds its own encoder."""

    def __init__(self, marker: str | None = None, die_on: int = 3):
        self.marker, self.die_on = marker, die_on

    def __call__(self) -> Encoder:
        return Dying(self.marker, self.die_on)


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(0)
    return [str(write_image(tmp_path / "img" / f"{i}.png", tuple(int(c) for c in rng.integers(0, 255, 3))))
            for i in range(40)]


def test_same_vectors_and_search_as_local_engine(myntra_small, emb_cache, tmp_path):
    from fashionlens.encoders.registry import create

    cat = myntra_small.subset(range(100))
    # local vectors from the session cache (shared with other tests), Ray's into a fresh one
    local = embed_images(create("efficientnet-lite0"), cat, cache_dir=emb_cache, progress=False)
    remote = embed_images_ray("efficientnet-lite0", cat, cache_dir=tmp_path / "ray", block_size=50,
                              concurrency=1, progress=False)
    assert remote.shape == local.shape == (100, 1280)
    np.testing.assert_allclose(remote, local, atol=1e-5)
    a, b = ExactIndex(local, cat.ids), ExactIndex(remote, cat.ids)
    assert np.array_equal(a.search(local[:20], 10)[1], b.search(local[:20], 10)[1])
    # the shards live in the local store's directory, one file per block
    store_dir = EmbeddingStore(tmp_path / "ray", create("efficientnet-lite0").fingerprint(), "image").dir
    assert len(ParquetShards(store_dir).files) == 2
    # the cache bridge: the local store then holds every key, so a local run embeds nothing
    assert warm_cache_ray("efficientnet-lite0", cat, tmp_path / "ray", progress=False) == 100
    keys = [f"{i}:{file_hash(p)}" for i, p in zip(cat.ids, cat.images)]
    assert EmbeddingStore(tmp_path / "ray", create("efficientnet-lite0").fingerprint(), "image").missing(keys) == []


def test_killed_worker_rerun_recomputes_only_missing_blocks(photos, tmp_path):
    expected = embed_images(Dying(None, 0), photos, cache_dir=None, progress=False)
    cache, marker = tmp_path / "cache", str(tmp_path / "died")
    # 40 photos in 5 blocks of 8; the only actor dies on its 3rd block and may not restart
    with pytest.raises(Exception):  # noqa: B017 - Ray wraps the actor death in its own error types
        embed_images_ray(DyingFactory(marker), photos, cache, block_size=8, concurrency=1, max_retries=0,
                         progress=False)
    assert os.path.exists(marker)
    store_dir = EmbeddingStore(cache, Dying(None, 0).fingerprint(), "image").dir
    survivors = {f: f.stat().st_mtime_ns for f in ParquetShards(store_dir).files}
    assert len(survivors) == 2  # blocks 1-2 were written before the kill, block 3 never was
    assert not list(store_dir.glob(".*.tmp"))  # no half-written shard left behind

    again = embed_images_ray(DyingFactory(marker), photos, cache, block_size=8, concurrency=1,
                             max_retries=0, progress=False)
    np.testing.assert_allclose(again, expected, atol=1e-6)
    files = ParquetShards(store_dir).files
    assert len(files) == 5
    assert all(f.stat().st_mtime_ns == t for f, t in survivors.items())  # finished blocks not redone


def test_killed_actor_is_restarted_within_the_run_and_bad_photos_reported(photos, tmp_path):
    Path(photos[5]).write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="5.png"):
        expected = embed_images(Dying(None, 0), photos[:16], cache_dir=None, progress=False)
    marker = str(tmp_path / "died")
    with pytest.warns(UserWarning, match="5.png.*skipped"):  # the worker's report reaches the driver
        got = embed_images_ray(DyingFactory(marker, die_on=2), photos[:16], tmp_path / "cache", block_size=4,
                               concurrency=1, max_retries=2, progress=False)
    assert os.path.exists(marker)
    assert not got[5].any()  # like the local engine: a zero vector
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_needs_a_cache_dir(photos):
    with pytest.raises(ValueError, match="needs a cache_dir"):
        embed_images_ray(DyingFactory(), photos, None, progress=False)
