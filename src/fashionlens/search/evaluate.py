"""Retrieval evaluation of an encoder on a catalog it never saw, over the whole gallery."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.embed import DEFAULT_CACHE, embed_catalog_images, embed_texts
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.metrics import (
    label_precision_at_k,
    metrics_from_ranks,
    target_ranks,
    topk,
)

DEFAULT_LABELS: tuple[tuple[str, ...], ...] = (("articleType",), ("articleType", "baseColour"))


def evaluate_retrieval(
    encoder: Encoder,
    queries: Catalog,
    label_sets: Sequence[Sequence[str]] = DEFAULT_LABELS,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    progress: bool = True,
    return_ranks: bool = False,
) -> dict[str, Any]:
    """Text→image: each item's name queries all the catalog's photos, its own photo the one answer.

    Image→image: each photo's 10 nearest other photos; a hit shares the label values of a label set
    (sets whose columns the catalog lacks are skipped).
    """
    if len(queries) < 2:
        raise InvalidInputError("need at least 2 items to evaluate retrieval")
    queries, images = embed_catalog_images(encoder, queries, cache_dir, progress=progress)  # undecodable photos: out
    out: dict[str, Any] = {}
    if "text" in encoder.modalities:
        texts = embed_texts(encoder, queries, cache_dir, progress=progress)
        ranks = target_ranks(texts, images, np.arange(len(queries)))
        out["text_to_image"] = metrics_from_ranks(ranks, len(queries))
        if return_ranks:
            out["text_to_image"]["ranks"] = ranks
    k = min(10, len(queries) - 1)
    nb = topk(images, images, k, exclude_self=True)
    i2i: dict[str, float] = {}
    for cols in label_sets:
        if all(c in queries.df.columns for c in cols):
            lab = queries.df[list(cols)].astype(str).agg("|".join, axis=1).to_numpy()
            i2i[f"precision@{k}_" + "_".join(cols)] = label_precision_at_k(nb, lab)
    out["image_to_image"] = i2i
    return out
