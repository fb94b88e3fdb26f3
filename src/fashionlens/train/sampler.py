"""Stratified batch sampler: each batch holds groups of same-category items (hard negatives for
InfoNCE, positives for SupCon/triplets) from several categories (easy negatives)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fashionlens.errors import InvalidInputError


class StratifiedBatchSampler:
    """Yields index batches of `batch_size` built from groups of `per_class` same-label items.

    Every item appears once per epoch; groups are shuffled across labels, so a batch mixes
    `batch_size // per_class` categories, large categories more often (as in the data).
    Deterministic for a given (seed, epoch); call `set_epoch` before each epoch.
    """

    def __init__(self, labels: Sequence, batch_size: int, per_class: int = 4, seed: int = 0,
                 drop_last: bool = False):
        if batch_size < 2:
            raise InvalidInputError(f"batch_size must be >= 2, got {batch_size}")
        if not 1 <= per_class <= batch_size:
            raise InvalidInputError(f"per_class must be in [1, batch_size], got {per_class}")
        _, self.labels = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        self.batch_size, self.per_class, self.seed, self.drop_last = batch_size, per_class, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch))
        groups: list[np.ndarray] = []
        for lab in np.unique(self.labels):
            idx = rng.permutation(np.flatnonzero(self.labels == lab))
            groups += [idx[i : i + self.per_class] for i in range(0, len(idx), self.per_class)]
        order = rng.permutation(len(groups))
        flat = np.concatenate([groups[g] for g in order]) if groups else np.zeros(0, dtype=np.int64)
        batches = [flat[i : i + self.batch_size] for i in range(0, len(flat), self.batch_size)]
        if batches and (self.drop_last or len(batches[-1]) < 2) and len(batches[-1]) < self.batch_size:
            batches.pop()  # a 1-item batch has no negatives
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._batches():
            yield b.tolist()

    def __len__(self) -> int:
        return len(self._batches())
