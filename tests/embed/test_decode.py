"""The thread-pool decode: item order kept, bad photos reported as a sequential decode reports them."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from fashionlens.catalog.images import ImageError, open_image
from fashionlens.embed import embed_images
from fashionlens.embed.decode import decoded, decoded_groups
from fashionlens.encoders.base import Encoder
from tests.conftest import write_image


def test_order_is_kept_when_later_items_finish_first() -> None:
    threads: set[str] = set()

    def slow_first(i: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.02 if i % 3 == 0 else 0.0)  # item 0, 3, ... finish after their successors
        if i == 4:
            raise ImageError(f"photo {i}: corrupt")
        return i * 10

    out = list(decoded(list(range(10)), slow_first, workers=3, ahead=4))
    assert [o for o in out if not isinstance(o, ImageError)] == [i * 10 for i in range(10) if i != 4]
    assert isinstance(out[4], ImageError) and "photo 4" in str(out[4])
    assert len(threads) > 1 and all(t.startswith("fashionlens-decode") for t in threads)


def test_other_errors_are_not_swallowed() -> None:
    def boom(i: int) -> int:
        raise MemoryError("no")

    with pytest.raises(MemoryError):
        list(decoded([1, 2, 3], boom, workers=2))


def test_groups_count_positions_over_all_sources() -> None:
    def load(i: int) -> int:
        if i in (2, 5):
            raise ImageError(f"{i}: bad")
        return i

    groups = list(decoded_groups(list(range(7)), load, group=3, workers=2))
    assert [g[0] for g in groups] == [[0, 1], [3, 4], [6]]
    assert [g[1] for g in groups] == [[0, 1], [3, 4], [6]]
    assert [sorted(g[2]) for g in groups] == [[2], [5], []]


class MeanColour(Encoder):
    """Mean RGB of the photo: a deterministic encoder that reveals which photo each row came from."""

    name, dim, modalities = "mean-colour", 3, ("image",)

    def _encode_images(self, images: list) -> np.ndarray:
        return np.stack([np.asarray(open_image(i) if isinstance(i, (str, Path)) else i, np.float32).mean((0, 1))
                         for i in images]) + 1.0


def test_embed_images_keeps_order_and_reports_bad_photos_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = [str(write_image(tmp_path / f"{i}.jpg", tuple(int(c) for c in rng.integers(0, 255, 3))))
             for i in range(300)]
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    paths[7] = str(tmp_path / "bad.jpg")
    paths[290] = str(tmp_path / "gone.jpg")
    enc = MeanColour()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = embed_images(enc, paths, cache_dir=None, progress=False)
    msgs = [str(w.message) for w in caught if w.category is UserWarning]
    assert msgs == [f"item {paths[7]}: {paths[7]}: not an image (content is not a known image format) — skipped (not embedded)",
                    f"item {paths[290]}: {paths[290]}: file not found — skipped (not embedded)"]
    ok = [i for i in range(300) if i not in (7, 290)]
    np.testing.assert_allclose(got[ok], enc.encode_images([paths[i] for i in ok]), atol=1e-6)
    assert not got[[7, 290]].any()
