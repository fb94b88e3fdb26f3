"""2-D maps of a catalog: t-SNE / UMAP projections coloured by a column, and a readable thumbnail map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from fashionlens.errors import InvalidInputError
from fashionlens.explore.clusters import pyplot
from fashionlens.explore.grids import load_thumb

METHODS = ("tsne", "umap", "pca")


def project(X: np.ndarray, method: str = "tsne", pca_dims: int = 50, seed: int = 0,
            threads: int | None = 1) -> np.ndarray:
    """(n, 2) coordinates. PCA to `pca_dims` first: it drops noise and makes t-SNE/UMAP on
    thousands of points take seconds, not minutes, on a small CPU.

    `threads` caps the OpenMP/BLAS pools (None: library default). 1 by default: on a shared 2-core
    machine, spinning OpenMP workers made t-SNE of 100 points take 49 s instead of 3 s.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _project(X, method, pca_dims, seed)


def _project(X: np.ndarray, method: str, pca_dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if method not in METHODS:
        raise InvalidInputError(f"unknown projection '{method}'; choose one of {', '.join(METHODS)}")
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    if n < 5:
        raise InvalidInputError(f"project: need at least 5 items for a 2-D map, got {n}")
    d = min(pca_dims, X.shape[1], n - 1)
    Z = PCA(n_components=d, random_state=seed).fit_transform(X) if d < X.shape[1] else X
    if method == "pca":
        return np.ascontiguousarray(Z[:, :2], dtype=np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        Y = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                 metric="cosine", random_state=seed, n_jobs=1).fit_transform(Z)
    else:
        import umap

        # seeded UMAP runs single-threaded anyway; saying so avoids its warning
        Y = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine", n_jobs=1,
                      random_state=seed, init="spectral" if n > 50 else "random").fit_transform(Z)
    return np.asarray(Y, dtype=np.float32)


def plot_map(coords: np.ndarray, values: Sequence[Any] | None = None, title: str = "", top: int = 12,
             label: str = "") -> Any:
    """Scatter of a 2-D map coloured by `values`: categories (the `top` most common, rest grey
    'other') or a numeric colour bar."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    s = max(2.0, min(20.0, 6000 / max(len(coords), 1)))
    if values is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=s, alpha=0.6)
    else:
        v = pd.Series(np.asarray(values, dtype=object))
        num = pd.to_numeric(v, errors="coerce")
        if num.notna().mean() > 0.9 and v.nunique() > top:  # numeric column: colour bar
            sc = ax.scatter(coords[:, 0], coords[:, 1], c=num.to_numpy(dtype=float), s=s, cmap="viridis", alpha=0.7)
            fig.colorbar(sc, ax=ax, label=label)
        else:
            v = v.fillna("(missing)").astype(str)
            cats = list(v.value_counts().index[:top])
            other = ~v.isin(cats).to_numpy()
            if other.any():
                ax.scatter(coords[other, 0], coords[other, 1], s=s, c="lightgrey", alpha=0.5, label="other")
            cmap = plt.get_cmap("tab20" if len(cats) > 10 else "tab10")
            for i, cat in enumerate(cats):
                m = (v == cat).to_numpy()
                ax.scatter(coords[m, 0], coords[m, 1], s=s, color=cmap(i % cmap.N), alpha=0.7, label=cat)
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2, title=label or None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    return fig


def thumbnail_map(coords: np.ndarray, images: Sequence[Any], size: int = 1600, thumb: int = 48,
                  seed: int = 0) -> Image.Image:
    """Photos placed at their map coordinates, readable: the map is cut into a grid of thumb-sized
    cells and each cell shows the one photo nearest its centre, so no photo hides another."""
    coords = np.asarray(coords, dtype=float)
    if len(coords) != len(images):
        raise ValueError(f"thumbnail_map: {len(coords)} points for {len(images)} images")
    if len(coords) == 0:
        raise ValueError("thumbnail_map: no points")
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    unit = (coords - lo) / np.maximum(hi - lo, 1e-12)  # [0, 1]^2
    ncell = max(1, size // thumb)
    cell = np.minimum((unit * ncell).astype(int), ncell - 1)
    centre_dist = np.linalg.norm(unit * ncell - (cell + 0.5), axis=1)
    # within each cell keep the point closest to the cell centre (ties broken by a seeded shuffle)
    order = np.lexsort((np.random.default_rng(seed).random(len(coords)), centre_dist))
    chosen: dict[tuple[int, int], int] = {}
    for i in order:
        chosen.setdefault((int(cell[i, 0]), int(cell[i, 1])), int(i))
    canvas = Image.new("RGB", (ncell * thumb, ncell * thumb), (255, 255, 255))
    for (cx, cy), i in chosen.items():
        # y grows downwards in images: flip so the map reads like the scatter plots
        canvas.paste(load_thumb(images[i], thumb), (cx * thumb, (ncell - 1 - cy) * thumb))
    return canvas
