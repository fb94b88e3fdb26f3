"""Near-duplicate search: exact against an n^2 reference, and a planted copy of a real photo is found."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.explore.duplicates import duplicate_groups, near_duplicate_pairs


def _slow_pairs(X: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = set()
    for i in range(len(X)):
        for j in range(i + 1, len(X)):
            if float(Xn[i] @ Xn[j]) >= threshold:
                out.add((i, j))
    return out


def test_pairs_match_the_quadratic_reference_across_blocks() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 24)).astype(np.float32)
    X[40] = X[3] + 0.01 * rng.normal(size=24)  # near copy
    X[90] = X[3] * 2.0  # exact copy at another scale
    X[120] = X[77] + 0.3 * rng.normal(size=24)  # similar but not a duplicate at 0.97
    pairs = near_duplicate_pairs(X, 0.97, block=16, ids=[f"id{i}" for i in range(150)])
    got = set(zip(pairs["i"], pairs["j"], strict=True))
    assert got == _slow_pairs(X, 0.97)
    assert {(3, 40), (3, 90), (40, 90)} <= got and (77, 120) not in got
    assert pairs["cosine"].is_monotonic_decreasing and pairs.iloc[0]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert pairs.loc[pairs["i"] == 3, "id_i"].iloc[0] == "id3"
    assert duplicate_groups(pairs, len(X)) == [[3, 40, 90]]


def test_zero_rows_and_bad_threshold() -> None:
    X = np.zeros((5, 8), dtype=np.float32)
    X[0, 0] = 1.0
    assert near_duplicate_pairs(X, 0.9).empty  # failed photos (zero vectors) never match each other
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_pairs(X, 1.5)


def test_planted_copy_of_a_real_photo_is_found(myntra_small, tmp_path: Path) -> None:
    from fashionlens.embed import embed_images
    from fashionlens.encoders.registry import create

    cat = myntra_small.subset(np.arange(40))
    src = Path(cat.images[7])
    # the same photo listed again: re-encoded as a JPEG at another quality (bytes differ) ...
    recoded = tmp_path / "copy_recoded.jpg"
    Image.open(src).save(recoded, quality=70)
    # ... and a byte-identical copy under a new name
    exact = tmp_path / "copy_exact.jpg"
    shutil.copy(src, exact)
    paths = [*cat.images, str(recoded), str(exact)]
    X = embed_images(create("efficientnet-lite0"), paths, cache_dir=None, progress=False)
    pairs = near_duplicate_pairs(X, 0.95, ids=[*cat.ids, "recoded", "exact"])
    found = set(zip(pairs["id_i"], pairs["id_j"], strict=True))
    assert {(cat.ids[7], "recoded"), (cat.ids[7], "exact"), ("recoded", "exact")} <= found
    # the real catalog items among themselves are not flooded with false duplicates
    assert len(found) <= 3 + 5
