"""Similarity triplets: NIGHTS-layout and plain CSVs, proxy triplets mined from catalog labels,
splits that hold out reference images, and photometric "other lighting" views."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashionlens.errors import InvalidInputError, NotFoundError

NIGHTS_COLUMNS = ("ref_path", "left_path", "right_path", "left_vote", "right_vote", "split")
PLAIN_COLUMNS = ("anchor", "a", "b", "choice")
# Proxy rules: (attributes the "closer" candidate shares with the anchor, attributes the other shares).
PROXY_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("articleType", "baseColour"), ("articleType",)),
    (("articleType",), ("subCategory",)),
)


@dataclass
class Triplets:
    """Reference + two candidates, with the human (or proxy) votes for each candidate.

    Paths are absolute strings. `p_left` is the share of votes for the left candidate; ties
    (e.g. 2-2 votes) are real and kept. `source` is "human" or "proxy" and travels into reports.
    """

    ref: list[str]
    left: list[str]
    right: list[str]
    left_vote: np.ndarray
    right_vote: np.ndarray
    split: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    source: str = "human"

    def __post_init__(self) -> None:
        n = len(self.ref)
        self.left_vote = np.asarray(self.left_vote, dtype=np.float64)
        self.right_vote = np.asarray(self.right_vote, dtype=np.float64)
        if len(self.split) == 0:
            self.split = np.array(["train"] * n, dtype=object)
        self.split = np.asarray(self.split, dtype=object)
        sizes = {len(self.left), len(self.right), len(self.left_vote), len(self.right_vote), len(self.split)}
        if sizes != {n}:
            raise ValueError(f"triplet columns differ in length: {sorted(sizes | {n})}")

    def __len__(self) -> int:
        return len(self.ref)

    @property
    def p_left(self) -> np.ndarray:
        """Share of votes for the left candidate (in [0, 1])."""
        return self.left_vote / (self.left_vote + self.right_vote)

    @property
    def images(self) -> list[str]:
        """Every distinct image path, sorted (the rows of a feature table)."""
        return sorted(set(self.ref) | set(self.left) | set(self.right))

    def index(self, images: Sequence[str] | None = None) -> np.ndarray:
        """(n, 3) int rows into `images` (default: `self.images`) for ref, left, right."""
        pos = {p: i for i, p in enumerate(images if images is not None else self.images)}
        try:
            return np.array([[pos[r], pos[a], pos[b]] for r, a, b in zip(self.ref, self.left, self.right, strict=True)],
                            dtype=np.int64).reshape(-1, 3)
        except KeyError as e:
            raise KeyError(f"image {e.args[0]} of a triplet has no feature row") from None

    def subset(self, rows: np.ndarray | Sequence[int]) -> Triplets:
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        pick = [int(i) for i in rows]
        return Triplets([self.ref[i] for i in pick], [self.left[i] for i in pick], [self.right[i] for i in pick],
                        self.left_vote[pick], self.right_vote[pick], self.split[pick], self.source)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ref_path": self.ref, "left_path": self.left, "right_path": self.right,
                             "left_vote": self.left_vote, "right_vote": self.right_vote,
                             "split": self.split, "source": self.source})


def load_triplets(path: str | Path, root: str | Path | None = None) -> Triplets:
    """Read a NIGHTS-layout CSV (`ref_path,left_path,right_path,left_vote,right_vote,split`) or a
    plain one (`anchor,a,b,choice`: choice 0 = a is closer, 1 = b is closer, or the share of votes
    for b; 0.5 = can't tell). Relative image paths resolve against `root` (default: the CSV's folder).
    An optional `source` column ("proxy") marks mined triplets.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"triplet file not found: {path}")
    df = pd.read_csv(path)
    base = Path(root) if root is not None else path.parent
    cols = set(df.columns)
    if set(NIGHTS_COLUMNS[:5]) <= cols:
        lv, rv = df["left_vote"].to_numpy(float), df["right_vote"].to_numpy(float)
        refs, lefts, rights = df["ref_path"], df["left_path"], df["right_path"]
        split = df["split"].astype(str).to_numpy(object) if "split" in cols else np.array([])
    elif set(PLAIN_COLUMNS) <= cols:
        choice = df["choice"].to_numpy(float)
        bad = np.flatnonzero(~((choice >= 0) & (choice <= 1)))
        if len(bad):
            raise InvalidInputError(f"{path}: row {int(bad[0]) + 2}: choice must be 0, 1 or a vote share in [0, 1], "
                             f"got {df['choice'].iloc[bad[0]]!r}")
        lv, rv = 1.0 - choice, choice
        refs, lefts, rights = df["anchor"], df["a"], df["b"]
        split = df["split"].astype(str).to_numpy(object) if "split" in cols else np.array([])
    else:
        raise InvalidInputError(f"{path}: unknown triplet layout (columns {list(df.columns)}); expected "
                         f"{', '.join(NIGHTS_COLUMNS)} or {', '.join(PLAIN_COLUMNS)}")
    for name, arr in (("left_vote", lv), ("right_vote", rv)):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if len(bad):
            raise InvalidInputError(f"{path}: row {int(bad[0]) + 2}: {name} must be a count >= 0")
    empty = np.flatnonzero(lv + rv <= 0)
    if len(empty):
        raise InvalidInputError(f"{path}: row {int(empty[0]) + 2}: triplet has no votes")
    source = str(df["source"].iloc[0]) if "source" in cols and len(df) else "human"

    root_dir = str(base.resolve())
    cache: dict[str, str] = {}  # few distinct images, many rows

    def resolve(col: pd.Series) -> list[str]:
        out = []
        for p in col.astype(str):
            if p not in cache:
                cache[p] = os.path.normpath(p if os.path.isabs(p) else os.path.join(root_dir, p))
            out.append(cache[p])
        return out

    return Triplets(resolve(refs), resolve(lefts), resolve(rights), lv, rv, split, source)


def save_triplets(triplets: Triplets, path: str | Path) -> None:
    """Write the NIGHTS layout (+ `source`) atomically."""
    from fashionlens.utils import atomic_write

    with atomic_write(path) as tmp:
        triplets.to_frame().to_csv(tmp, index=False)


def mine_proxy_triplets(catalog: Any, n: int = 1000, seed: int = 0,
                        rules: Sequence[tuple[Sequence[str], Sequence[str]]] = PROXY_RULES) -> Triplets:
    """Proxy triplets from catalog labels, NOT human judgements (source="proxy").

    For each rule (closer, other) an anchor gets one candidate sharing every `closer` attribute and
    one sharing the `other` attributes but not all `closer` ones (e.g. same articleType and
    baseColour vs same articleType, other colour). Left/right order is random; the closer side gets 1 vote.
    """
    df = catalog.df.reset_index(drop=True)
    missing = sorted({c for rule in rules for part in rule for c in part} - set(df.columns))
    if missing:
        raise NotFoundError(f"catalog has no column(s) {', '.join(missing)} needed for proxy triplets")
    rng = np.random.default_rng(seed)
    images = df["image"].astype(str).to_numpy(object)
    out: list[tuple[str, str, str, int]] = []
    per_rule = [n // len(rules) + (i < n % len(rules)) for i in range(len(rules))]
    for (closer, other), want in zip(rules, per_rule, strict=True):
        closer, other = list(closer), list(other)
        close_key = df[closer].astype(str).agg("|".join, axis=1).to_numpy(object)
        other_key = df[other].astype(str).agg("|".join, axis=1).to_numpy(object)
        close_groups = pd.Series(np.arange(len(df))).groupby(close_key).apply(np.asarray).to_dict()
        other_groups = pd.Series(np.arange(len(df))).groupby(other_key).apply(np.asarray).to_dict()
        got, tries = 0, 0
        while got < want and tries < want * 50:
            tries += 1
            a = int(rng.integers(len(df)))
            pos = close_groups[close_key[a]]
            neg = other_groups[other_key[a]]
            pos, neg = pos[pos != a], neg[close_key[neg] != close_key[a]]
            if not len(pos) or not len(neg):
                continue
            p, q = int(rng.choice(pos)), int(rng.choice(neg))
            out.append((images[a], images[p], images[q], int(rng.integers(2))))
            got += 1
    if not out:
        raise InvalidInputError("no proxy triplet could be mined: no anchor has both a matching and a contrasting item")
    ref = [o[0] for o in out]
    swap = np.array([o[3] for o in out], dtype=bool)  # True: the closer candidate goes right
    left = [o[2] if s else o[1] for o, s in zip(out, swap, strict=True)]
    right = [o[1] if s else o[2] for o, s in zip(out, swap, strict=True)]
    return Triplets(ref, left, right, (~swap).astype(float), swap.astype(float), source="proxy")


def split_by_reference(triplets: Triplets, test_size: float = 0.2, seed: int = 0,
                       strict: bool = False) -> tuple[Triplets, Triplets]:
    """Hold out a random share of reference images: test = triplets whose reference is held out.

    `strict=True` also drops from train every triplet that shows a held-out image anywhere.
    """
    refs = sorted(set(triplets.ref))
    if len(refs) < 2:
        raise InvalidInputError("need at least two distinct reference images to hold some out")
    rng = np.random.default_rng(seed)
    n_test = min(len(refs) - 1, max(1, round(test_size * len(refs))))
    held = set(rng.choice(refs, size=n_test, replace=False).tolist())
    is_test = np.array([r in held for r in triplets.ref])
    train = ~is_test
    if strict:
        train &= np.array([a not in held and b not in held for a, b in zip(triplets.left, triplets.right, strict=True)])
    return triplets.subset(train), triplets.subset(is_test)


def photometric(img: Any, rng: np.random.Generator, strength: float = 1.0) -> Any:
    """Random brightness / contrast / gamma / hue change of a PIL image ("other lighting").

    strength 1: brightness and contrast x[0.7, 1.3], gamma in [0.7, 1.4], hue shift +-0.05;
    larger strengths widen every range (2 = strong, used to simulate other lighting at test time).
    """
    import torchvision.transforms.functional as F

    s = float(strength)
    img = img.convert("RGB")
    img = F.adjust_brightness(img, float(np.exp(rng.uniform(-0.35, 0.35) * s)))
    img = F.adjust_contrast(img, float(np.exp(rng.uniform(-0.35, 0.35) * s)))
    img = F.adjust_gamma(img, float(np.exp(rng.uniform(-0.35, 0.35) * s)))
    return F.adjust_hue(img, float(np.clip(rng.uniform(-0.05, 0.05) * s, -0.5, 0.5)))
