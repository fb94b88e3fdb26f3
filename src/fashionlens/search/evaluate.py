"""Retrieval evaluation of an encoder on held-out items, ranked against the whole catalog or alone.

Results carry, per task, each metric's value under its own name, its 95% percentile bootstrap CI
over queries in `ci95[metric] = [low, high]` and its chance level (a random ranking of the same
gallery) in `chance[metric]`: old readers of `res["text_to_image"]["recall@10"]` keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashionlens.catalog.core import Catalog
from fashionlens.embed import DEFAULT_CACHE, embed_catalog_images, embed_images, embed_texts
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.metrics import (
    label_chance,
    relevance_chance,
    relevance_scores,
    relevant_ranks,
    topk,
)
from fashionlens.evaluation.statistics import bootstrap_ci
from fashionlens.search.index import SearchIndex

DEFAULT_LABELS: tuple[tuple[str, ...], ...] = (("articleType",), ("articleType", "baseColour"))
TEXT_METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")
BLOCK = 256  # queries scored at once: 256 x 40k float32 scores = 41 MB


def normalise_name(text: Any) -> str:
    """Product names compared case- and space-insensitively ("Red  Shirt " == "red shirt")."""
    return " ".join(str(text).lower().split())


def evaluate_retrieval(
    encoder: Encoder,
    queries: Catalog,
    label_sets: Sequence[Sequence[str]] = DEFAULT_LABELS,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    progress: bool = True,
    return_ranks: bool = False,
    gallery: Catalog | np.ndarray | SearchIndex | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Text→image and image→image retrieval of held-out `queries` items.

    The gallery is the queries' own photos plus, when `gallery` is given, every photo of it as a
    distractor: a Catalog (embedded with `encoder`), a SearchIndex built with `encoder` (its stored
    vectors and catalog labels), or an (m, dim) array of vectors (no labels, so no image→image).
    Distractor items with a query's id are dropped (the held-out copy stands). `None`: the
    held-out items alone.

    Text→image: each query name ranks the whole gallery; its relevant items are the held-out items
    with the same normalised name (its own photo always among them); distractors are never hits.
    Image→image: each held-out photo's 10 nearest others in the whole gallery; P@10 of sharing the
    label values of each label set (sets some side lacks are skipped).
    """
    if len(queries) < 2:
        raise InvalidInputError("need at least 2 items to evaluate retrieval")
    queries, q_img = embed_catalog_images(encoder, queries, cache_dir, progress=progress)  # undecodable photos: out
    d_vec, d_labels = _distractors(gallery, queries, encoder, cache_dir, progress)
    if d_vec.shape[1] != q_img.shape[1]:
        raise InvalidInputError(f"gallery vectors have dim {d_vec.shape[1]} but encoder '{encoder.name}' makes "
                         f"{q_img.shape[1]}: the gallery was embedded with another encoder")
    vectors = np.concatenate([d_vec, q_img]) if len(d_vec) else q_img
    n_d, size = len(d_vec), len(d_vec) + len(queries)
    out: dict[str, Any] = {"gallery": {"size": size, "n_distractors": n_d, "n_queries": len(queries)}}
    if "text" in encoder.modalities:
        texts = embed_texts(encoder, queries, cache_dir, progress=progress)
        _, groups, counts = np.unique([normalise_name(t) for t in queries.texts], return_inverse=True,
                                      return_counts=True)
        first, top = relevant_ranks(texts, vectors, groups, np.r_[np.full(n_d, -1), groups], k=10, block=BLOCK)
        n_rel = counts[groups]
        per = relevance_scores(first, top, n_rel)
        t2i = _summary(per, relevance_chance(n_rel, size), n_boot, seed)
        t2i |= {"chance@10": t2i["chance"]["recall@10"], "n_queries": len(queries), "gallery_size": size}
        if return_ranks:
            t2i["ranks"] = first
        out["text_to_image"] = t2i
    out["image_to_image"] = _image_to_image(q_img, vectors, n_d, queries.df, d_labels, label_sets, n_boot, seed)
    return out


def _distractors(gallery: Catalog | np.ndarray | SearchIndex | None, queries: Catalog, encoder: Encoder,
                 cache_dir: str | Path | None, progress: bool) -> tuple[np.ndarray, pd.DataFrame | None]:
    """The distractor vectors and their label frame (None when unknown)."""
    dim = encoder.dim
    if gallery is None:
        return np.zeros((0, dim), dtype=np.float32), pd.DataFrame()
    if isinstance(gallery, np.ndarray):
        if gallery.ndim != 2:
            raise InvalidInputError(f"gallery vectors must be a 2-d (items, dim) array, got shape {gallery.shape}")
        return gallery.astype(np.float32, copy=False), None
    held = set(queries.ids)
    if isinstance(gallery, SearchIndex):
        df = gallery.catalog.df  # mirrors the index rows one to one
        keep = ~df["id"].isin(held).to_numpy()
        return np.asarray(gallery.index.vectors)[keep], df[keep]
    if isinstance(gallery, Catalog):
        cat = gallery.subset(~gallery.df["id"].isin(held).to_numpy())
        return embed_images(encoder, cat, cache_dir, progress=progress), cat.df
    raise TypeError(f"gallery must be a Catalog, a SearchIndex or an array of vectors, not {type(gallery).__name__}")


def _image_to_image(q_img: np.ndarray, vectors: np.ndarray, n_d: int, q_df: pd.DataFrame,
                    d_df: pd.DataFrame | None, label_sets: Sequence[Sequence[str]], n_boot: int,
                    seed: int) -> dict[str, Any]:
    if d_df is None:
        return {}
    k = min(10, len(vectors) - 1)
    own = n_d + np.arange(len(q_img))  # each query's position in the gallery
    nb = topk(q_img, vectors, k, exclude=own, block=BLOCK)
    per: dict[str, np.ndarray] = {}
    chance: dict[str, np.ndarray] = {}
    for cols in label_sets:
        if not all(c in q_df.columns and (n_d == 0 or c in d_df.columns) for c in cols):
            continue
        frames = [d_df, q_df] if n_d else [q_df]
        lab = np.concatenate([f[list(cols)].astype(str).agg("|".join, axis=1).to_numpy() for f in frames])
        name = f"precision@{k}_" + "_".join(cols)
        per[name] = (lab[nb] == lab[own][:, None]).mean(axis=1)
        chance[name] = label_chance(lab[own], lab)
    return _summary(per, chance, n_boot, seed) if per else {}


def _summary(per: dict[str, np.ndarray], chance: dict[str, np.ndarray], n_boot: int, seed: int) -> dict[str, Any]:
    """Means of per-query values, their bootstrap CIs and mean chance levels."""
    out: dict[str, Any] = {m: float(np.mean(v)) for m, v in per.items()}
    out["ci95"] = {m: list(bootstrap_ci(v, n_boot, seed)) for m, v in per.items()}
    out["chance"] = {m: float(np.mean(chance[m])) for m in per}
    return out
