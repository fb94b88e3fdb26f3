"""Data preparation for categorisation: label hierarchy, splits, balancing, augmented encoders."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError

# The Kaggle "Fashion Product Images" hierarchy, coarse to fine.
KAGGLE_LEVELS = ("masterCategory", "subCategory", "articleType")
OTHER = "other"


@dataclass
class LabelHierarchy:
    """Parent of every label at each level, taken from the catalog's own label co-occurrence.

    The catalog is noisy (an article type can sit under two sub-categories); the parent is the one
    the label co-occurs with most often.
    """

    levels: tuple[str, ...] = ()
    parents: dict[str, dict[str, str]] = field(default_factory=dict)  # child level -> {child: parent}

    @classmethod
    def from_frame(cls, df: Any, levels: Sequence[str] = KAGGLE_LEVELS) -> LabelHierarchy:
        levels = tuple(lv for lv in levels if lv in df.columns)
        parents: dict[str, dict[str, str]] = {}
        for parent, child in zip(levels, levels[1:]):
            pairs = df[[child, parent]].dropna().astype(str)
            counts = pairs.value_counts()  # (child, parent) -> n, most frequent first
            mapping: dict[str, str] = {}
            for (c, p), _ in counts.items():
                mapping.setdefault(c, p)
            parents[child] = mapping
        return cls(levels, parents)

    def above(self, level: str) -> list[str]:
        """Levels coarser than `level`, nearest first (empty if `level` is not in the hierarchy)."""
        if level not in self.levels:
            return []
        i = self.levels.index(level)
        return list(reversed(self.levels[:i]))

    def ancestor(self, label: str, level: str, target: str) -> str:
        """The `target`-level ancestor of `label` (a `level` label); OTHER when unknown."""
        cur, lv = label, level
        while lv != target:
            cur = self.parents.get(lv, {}).get(cur, OTHER)
            lv = self.levels[self.levels.index(lv) - 1]
        return cur

    def to_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "parents": self.parents}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelHierarchy:
        return cls(tuple(d.get("levels", ())), dict(d.get("parents", {})))


def clean_labels(values: Sequence[Any]) -> np.ndarray:
    """Labels as stripped strings; missing ones ('', nan, None) become ''."""
    out = []
    for v in values:
        s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        out.append("" if s.lower() == "nan" else s)
    return np.asarray(out, dtype=object)


def stratified_split(y: Sequence[str], test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of positions; classes with one item go to the first part."""
    from sklearn.model_selection import train_test_split

    y = np.asarray(y, dtype=object)
    counts = Counter(y.tolist())
    pos = np.arange(len(y))
    single = np.array([counts[v] < 2 for v in y], dtype=bool)
    a, b = train_test_split(pos[~single], test_size=test_size, random_state=seed, stratify=y[~single])
    return np.sort(np.concatenate([a, pos[single]])), np.sort(b)


def merge_rare(y: Sequence[str], min_size: int, other: str = OTHER) -> tuple[np.ndarray, dict[str, int]]:
    """Labels with fewer than `min_size` items become `other`; returns new labels and {merged: count}."""
    y = np.asarray(y, dtype=object)
    if min_size <= 1:
        return y, {}
    counts = Counter(y.tolist())
    rare = {k: v for k, v in counts.items() if v < min_size and k != other}
    return np.asarray([other if v in rare else v for v in y], dtype=object), dict(sorted(rare.items()))


def cap_per_class(y: Sequence[Any], cap: int, seed: int = 0) -> np.ndarray:
    """Sorted positions keeping at most `cap` random items of each class."""
    y = np.asarray(y, dtype=object)
    rng = np.random.default_rng(seed)
    keep = []
    for c in sorted(set(y.tolist()), key=str):
        pos = np.flatnonzero(y == c)
        keep.append(pos if len(pos) <= cap else rng.choice(pos, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def oversample(y: Sequence[Any], target: int | None = None, seed: int = 0) -> np.ndarray:
    """Positions where every class smaller than `target` (default: the median class size) is
    resampled with replacement up to `target`; larger classes are kept as they are."""
    y = np.asarray(y, dtype=object)
    rng = np.random.default_rng(seed)
    counts = Counter(y.tolist())
    target = int(target if target is not None else np.median(list(counts.values())))
    out = [np.arange(len(y))]
    for c, n in counts.items():
        if n < target:
            out.append(rng.choice(np.flatnonzero(y == c), target - n, replace=True))
    return np.concatenate(out)


def class_weights(y_idx: Sequence[int], n_classes: int, power: float = 1.0) -> np.ndarray:
    """'balanced' weights n / (k * count_c), tempered by `power` (0: none, 0.5: sqrt, 1: full)."""
    counts = np.bincount(np.asarray(y_idx, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    w[present] = (counts[present].sum() / (present.sum() * counts[present])) ** power
    return (w / w[present].mean()).astype(np.float32)


# ---- augmentation ---------------------------------------------------------------------------
AUGMENTATIONS = ("hflip", "train")


def augment_transform(kind: str, size: tuple[int, int]) -> Any:
    """torchvision v2 transform on a PIL image: `hflip` (test-time) or `train` (random)."""
    from torchvision.transforms import v2

    if kind == "hflip":
        return v2.RandomHorizontalFlip(p=1.0)
    w, h = size
    return v2.Compose([
        v2.RandomResizedCrop((h, w), scale=(0.7, 1.0), ratio=(0.9 * w / h, 1.1 * w / h), antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        # hue stays untouched: colour is a label the catalog cares about
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1),
    ])


class AugmentedEncoder(Encoder):
    """Wraps an image encoder so that every image is augmented before encoding.

    Used through `embed_images`, which caches per fingerprint: each (`kind`, `copy`) gets its own cache
    entry, and the random draw is seeded by the image pixels + copy, so a re-run gives the same vectors.
    """

    def __init__(self, inner: Encoder, kind: str = "hflip", copy: int = 0):
        if kind not in AUGMENTATIONS:
            raise InvalidInputError(f"unknown augmentation '{kind}'; choose one of {', '.join(AUGMENTATIONS)}")
        inner._require("image")
        self.inner, self.kind, self.copy = inner, kind, copy
        self.name, self.dim, self.modalities = inner.name, inner.dim, inner.modalities
        self.preprocess, self.batch_size = inner.preprocess, inner.batch_size

    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint()}|aug={self.kind}:{self.copy}"

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        import torch

        from fashionlens.catalog.images import open_image

        out = []
        for im in images:
            im = im.convert("RGB") if hasattr(im, "convert") else open_image(im)
            seed = int.from_bytes(hashlib.blake2b(im.tobytes() + bytes([self.copy % 256]), digest_size=4).digest(), "little")
            with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
                torch.manual_seed(seed)
                out.append(augment_transform(self.kind, im.size)(im))
        return self.inner.encode_images(out)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_texts(texts)


class JsonLines:
    """Appends one JSON object per line as training goes (nothing written without a path)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def __call__(self, row: dict[str, Any]) -> None:
        if self.path:
            with self.path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
