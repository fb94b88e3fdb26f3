"""Perceptual alignment: does an encoder agree with people on "which one looks more similar"?

2AFC accuracy on similarity triplets (vote-weighted, bootstrap CI), the human ceiling, and features
of (photometrically augmented) views of the triplet images for frozen-encoder heads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.statistics import bootstrap_ci
from fashionlens.perceptual.data import (
    Triplets,
    load_triplets,
    mine_proxy_triplets,
    photometric,
    save_triplets,
    split_by_reference,
)

__all__ = [
    "Triplets", "cosine_distances", "evaluate_encoder", "human_ceiling", "load_triplets",
    "mine_proxy_triplets", "photometric", "save_triplets", "split_by_reference", "summarize", "summarize_splits",
    "two_afc", "two_afc_scores", "view_features",
]


def two_afc_scores(d_left: np.ndarray, d_right: np.ndarray, p_left: np.ndarray) -> np.ndarray:
    """Per-triplet 2AFC credit: the share of votes for the side the model calls closer (0.5 on a tie)."""
    d_left, d_right, p_left = (np.asarray(a, dtype=np.float64) for a in (d_left, d_right, p_left))
    return np.where(d_left < d_right, p_left, np.where(d_left > d_right, 1.0 - p_left, 0.5))


def two_afc(d_left: np.ndarray, d_right: np.ndarray, p_left: np.ndarray, n_boot: int = 1000,
            seed: int = 0) -> dict[str, Any]:
    """Vote-weighted 2AFC accuracy with a 95% percentile bootstrap CI over triplets."""
    return summarize(two_afc_scores(d_left, d_right, p_left), n_boot, seed)


def summarize(scores: np.ndarray, n_boot: int = 1000, seed: int = 0, groups: np.ndarray | None = None) -> dict[str, Any]:
    """Mean of per-triplet 2AFC credits (or of paired differences) with a 95% bootstrap CI; with
    `groups` (e.g. each triplet's reference image) the bootstrap resamples groups, not triplets."""
    if groups is not None:
        return summarize_splits([scores], [groups], n_boot, seed)
    s = np.asarray(scores, dtype=np.float64)
    if not len(s):
        raise InvalidInputError("no triplets to score")
    lo, hi = bootstrap_ci(s, n_boot, seed) if n_boot and len(s) > 1 else (float(s.mean()), float(s.mean()))
    return {"2afc": float(s.mean()), "ci95": [float(lo), float(hi)], "n": int(len(s))}


def summarize_splits(scores: Sequence[np.ndarray], groups: Sequence[np.ndarray], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """Mean over splits of each split's mean score, with a 95% percentile CI from a cluster
    bootstrap: every resample redraws each split's groups (held-out reference images) with
    replacement, keeping all triplets of a drawn group, so the CI carries which materials happen
    to be held out, not only which triplets. Paired model differences: pass per-triplet differences."""
    if len(scores) != len(groups) or not len(scores):
        raise InvalidInputError(f"need one group array per split (got {len(scores)} score and {len(groups)} group arrays)")
    rng = np.random.default_rng(seed)
    means, boots, n = [], np.zeros(max(int(n_boot), 1)), 0
    for s, g in zip(scores, groups, strict=True):
        s = np.asarray(s, dtype=np.float64)
        if not len(s) or len(s) != len(g):
            raise InvalidInputError(f"each split needs as many groups as scores (>0), got {len(s)} and {len(g)}")
        _, inv = np.unique(np.asarray(g), return_inverse=True)
        sums, counts = np.bincount(inv, s), np.bincount(inv).astype(np.float64)
        draws = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=len(boots))
        means.append(float(s.mean()))
        boots += (draws @ sums) / (draws @ counts) / len(scores)
        n += len(s)
    lo, hi = np.percentile(boots, [2.5, 97.5]) if n_boot else (np.mean(means), np.mean(means))
    return {"2afc": float(np.mean(means)), "ci95": [float(lo), float(hi)], "n": n,
            "per_split": [round(m, 4) for m in means]}


def human_ceiling(p_left: np.ndarray) -> float:
    """Share of votes that agree with each triplet's majority: the best any model can score."""
    p = np.asarray(p_left, dtype=np.float64)
    return float(np.maximum(p, 1.0 - p).mean())


def cosine_distances(features: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 - cos(ref, left), 1 - cos(ref, right) for (n, 3) rows into `features`."""
    f = np.asarray(features, dtype=np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    r, a, b = f[index[:, 0]], f[index[:, 1]], f[index[:, 2]]
    return 1.0 - (r * a).sum(1), 1.0 - (r * b).sum(1)


def _relit(img: Any, rng: np.random.Generator, strength: float) -> Any:
    from fashionlens.encoders.lighting import relight, to_float, to_pil

    return to_pil(relight(to_float(img), rng, strength))


def _colour_jitter(img: Any, rng: np.random.Generator, strength: float) -> Any:
    from fashionlens.encoders.lighting import colour_jitter, to_float, to_pil

    return to_pil(colour_jitter(to_float(img), rng, strength))


# training views: "photometric", "colour_jitter"; "relight" is the held-out test proxy
VIEW_FAMILIES = {"photometric": photometric, "colour_jitter": _colour_jitter, "relight": _relit}


def view_features(encoders: Any, images: Sequence[str], n_views: int = 1, strength: float = 1.0,
                  seed: int = 0, cache_dir: str | Path | None = None, family: str = "photometric",
                  progress: bool = False) -> np.ndarray:
    """(n_images, n_views, dim) features; view 0 is the photo as is, the others random variants of
    `family`: "photometric" (brightness / contrast / gamma / hue), "colour_jitter" (colour matrix, tone
    curve, light spot: `lighting.colour_jitter`), both training jitter, or "relight" (colour
    temperature, exposure, highlight gain, flip / turn: the held-out relighting proxy).

    Several encoders (an ensemble) give their unit-norm features side by side. With `cache_dir`
    the table is stored as .npy keyed by the encoders' fingerprints, the paths and the view settings.
    `progress`: lines/bar on stderr (a pass of several views over every image takes minutes on a CPU).
    """
    from fashionlens.catalog.images import open_image
    from fashionlens.progress import counter

    if family not in VIEW_FAMILIES:
        raise InvalidInputError(f"unknown view family '{family}' (use {' or '.join(VIEW_FAMILIES)})")
    change = VIEW_FAMILIES[family]
    encs = list(encoders) if isinstance(encoders, (list, tuple)) else [encoders]
    settings = (n_views, strength, seed) if family == "photometric" else (n_views, strength, seed, family)
    key = hashlib.blake2b(repr(([e.fingerprint() for e in encs], list(images), *settings))
                          .encode(), digest_size=10).hexdigest()
    cache = Path(cache_dir) / f"views-{key}.npy" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        return np.load(cache)
    rng = np.random.default_rng(seed)
    out = np.zeros((len(images), n_views, sum(e.dim for e in encs)), dtype=np.float32)
    chunk = 64
    shown = counter(f"embedding {len(images)} images x {n_views} views", len(images) * n_views) if progress \
        else nullcontext(lambda n=1: None)
    with shown as advance:
        for start in range(0, len(images), chunk):
            photos = [open_image(p) for p in images[start : start + chunk]]
            for v in range(n_views):
                views = photos if v == 0 else [change(im, rng, strength) for im in photos]
                out[start : start + len(photos), v] = np.concatenate([e.encode_images(views) for e in encs], axis=1)
                advance(len(photos))
    if cache is not None:
        from fashionlens.utils import atomic_write

        with atomic_write(cache) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out)
    return out


def evaluate_encoder(encoder: Any, triplets: Triplets, lighting: float | None = None, seed: int = 0,
                     n_boot: int = 1000, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """2AFC of an encoder (or an ensemble list) on triplets, plus the human ceiling.

    `lighting`: if set, every image is first relit with this strength (`lighting.relight`, one
    fixed random view per image): a SYNTHETIC proxy of the same items under other lighting, from a
    family of changes (colour temperature, highlights, flips) the training jitter never makes.
    """
    images = triplets.images
    if lighting is None:
        feats = view_features(encoder, images, 1, cache_dir=cache_dir)[:, 0]
    else:
        feats = view_features(encoder, images, 2, strength=lighting, seed=seed, cache_dir=cache_dir,
                              family="relight")[:, 1]
    d_l, d_r = cosine_distances(feats, triplets.index(images))
    res = two_afc(d_l, d_r, triplets.p_left, n_boot=n_boot, seed=seed)
    res["human_ceiling"] = human_ceiling(triplets.p_left)
    res["source"] = triplets.source
    return res
