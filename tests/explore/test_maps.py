"""2-D projections keep clusters apart; scatter maps and the thumbnail map render readably."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.explore.maps import plot_map, project, thumbnail_map


def _blobs(n_per: int = 34, k: int = 3, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    X = rng.normal(size=(k, dim))[y] * 3 + rng.normal(size=(len(y), dim))
    return X.astype(np.float32), y


def _knn_accuracy(Y: np.ndarray, y: np.ndarray) -> float:
    d = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_projection_keeps_clusters_apart(method: str) -> None:
    X, y = _blobs()
    Y = project(X, method, pca_dims=20)
    assert Y.shape == (len(X), 2) and np.isfinite(Y).all()
    assert _knn_accuracy(Y, y) > 0.95
    np.testing.assert_allclose(project(X, method, pca_dims=20), Y, atol=1e-4)  # seeded: reproducible


@pytest.mark.slow  # numba compiles UMAP on first use (~30-60 s on 2 busy cores)
def test_umap_projection_keeps_clusters_apart() -> None:
    X, y = _blobs()
    assert _knn_accuracy(project(X, "umap", pca_dims=20), y) > 0.95


def test_projection_bad_inputs() -> None:
    X, _ = _blobs()
    with pytest.raises(ValueError, match="unknown projection"):
        project(X, "mds")
    with pytest.raises(ValueError, match="at least 5"):
        project(X[:3], "pca")


def test_plot_map_categorical_and_numeric() -> None:
    X, y = _blobs()
    Y = project(X, "pca")
    for values in (np.array(["Shirts", "Shoes", "Bags"])[y], np.linspace(0, 100, len(y)), None):
        fig = plot_map(Y, values, "map", label="col")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.tell() > 5000
    fig = plot_map(Y, np.array([f"c{i}" for i in range(len(y))]), "many", top=5)  # rest folded to 'other'
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "other" and len(labels) == 6


def test_thumbnail_map_places_photos_without_overlap(tmp_path: Path) -> None:
    # three photos in three corner cells of a 4x4 map, plus one crowding the top-left cell off-centre
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    imgs = [Image.new("RGB", (30, 40), c) for c in colours]
    coords = np.array([[0.125, 0.875], [1.0, 1.0], [0.0, 0.0], [0.01, 0.99]])
    m = np.asarray(thumbnail_map(coords, imgs, size=200, thumb=50))
    assert m.shape == (200, 200, 3)
    centre = lambda r, c: tuple(int(v) for v in m[r * 50 + 25, c * 50 + 25])  # noqa: E731
    assert centre(0, 0) == (255, 0, 0)  # top-left: the photo nearest the cell centre wins
    assert centre(0, 3) == (0, 255, 0)
    assert centre(3, 0) == (0, 0, 255)
    assert not ((m[..., 0] > 200) & (m[..., 1] > 200) & (m[..., 2] < 50)).any()  # yellow hidden, not overlapping
    with pytest.raises(ValueError, match="points for"):
        thumbnail_map(coords, imgs[:2])
