import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fashionlens.embed import EmbeddingStore, embed_images, embed_texts
from fashionlens.encoders.base import Encoder
from tests.conftest import write_image


class MeanColour(Encoder):
    """Deterministic toy image encoder: mean RGB + a constant, counts what it encoded."""

    name = "mean-colour"
    dim = 4
    modalities = ("image", "text")
    batch_size = 4

    def __init__(self, fail_after: int | None = None):
        self.seen = 0
        self.fail_after = fail_after

    def _encode_images(self, images):
        if self.fail_after is not None and self.seen >= self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C looks like mid-run
        self.seen += len(images)
        return np.array([[*np.asarray(im, dtype=float).mean(axis=(0, 1)), 1.0] for im in images])

    def _encode_texts(self, texts):
        self.seen += len(texts)
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts])


@pytest.fixture()
def photos(tmp_path):
    rng = np.random.default_rng(0)
    return [str(write_image(tmp_path / "img" / f"{i}.png", tuple(int(c) for c in rng.integers(0, 255, 3)))) for i in range(20)]


def test_cache_embeds_only_new_or_changed(tmp_path, photos):
    enc = MeanColour()
    first = embed_images(enc, photos[:10], cache_dir=tmp_path / "c", chunk_size=4, progress=False)
    assert enc.seen == 10
    write_image(Path(photos[3]), (1, 2, 3))  # changed content
    again = embed_images(enc, photos, cache_dir=tmp_path / "c", chunk_size=4, progress=False)
    assert enc.seen == 10 + 10 + 1
    assert np.allclose(again[:3], first[:3]) and not np.allclose(again[3], first[3])


def test_interrupted_run_resumes_to_the_same_vectors(tmp_path, photos):
    full = embed_images(MeanColour(), photos, cache_dir=None, chunk_size=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        embed_images(MeanColour(fail_after=8), photos, cache_dir=tmp_path / "c", chunk_size=4, progress=False)
    resumed_enc = MeanColour()
    resumed = embed_images(resumed_enc, photos, cache_dir=tmp_path / "c", chunk_size=4, progress=False)
    assert resumed_enc.seen == 12  # the two finished chunks were kept
    np.testing.assert_allclose(resumed, full, rtol=0, atol=1e-7)


def test_killed_process_resumes(tmp_path, photos):
    """SIGKILL mid-run (no cleanup at all): finished chunks survive, no partial file is read."""
    cache = tmp_path / "c"
    code = textwrap.dedent(f"""
        import time, numpy as np
        from tests.embed.test_store import MeanColour
        class Slow(MeanColour):
            def _encode_images(self, images):
                time.sleep(0.3)
                return super()._encode_images(images)
        from fashionlens.embed import embed_images
        embed_images(Slow(), {photos!r}, cache_dir={str(cache)!r}, chunk_size=2, progress=False)
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("chunk-*.npz"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(cache.rglob("chunk-*.npz")))
    assert 2 <= done < 10
    enc = MeanColour()
    resumed = embed_images(enc, photos, cache_dir=cache, chunk_size=2, progress=False)
    assert enc.seen == 20 - 2 * done
    np.testing.assert_allclose(resumed, embed_images(MeanColour(), photos, cache_dir=None, progress=False), atol=1e-7)


def test_corrupt_image_is_reported_and_zeroed(tmp_path, photos):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.warns(UserWarning, match="not an image"):
        vec = embed_images(MeanColour(), [photos[0], str(bad)], cache_dir=None, progress=False)
    assert np.allclose(vec[1], 0) and np.linalg.norm(vec[0]) == pytest.approx(1)


def test_texts_cached_and_duplicates_encoded_once(tmp_path):
    enc = MeanColour()
    v = embed_texts(enc, ["a", "banana", "a"], cache_dir=tmp_path, progress=False)
    assert enc.seen == 2 and np.allclose(v[0], v[2])
    store = EmbeddingStore(tmp_path, enc.fingerprint(), "text")
    assert len(store) == 2


def test_missing_modality_is_a_clear_error():
    class ImageOnly(MeanColour):
        modalities = ("image",)

    with pytest.raises(ValueError, match="no text tower"):
        embed_texts(ImageOnly(), ["x"], cache_dir=None)
