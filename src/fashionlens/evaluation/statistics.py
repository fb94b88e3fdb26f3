"""Confidence intervals and significance tests for "model A beats model B" (pure functions).

`bootstrap_ci` is the one percentile bootstrap of a mean used for every reported CI (retrieval
metrics over queries, 2AFC over triplets, a target per cluster).

Both tests work on per-item losses of the two models (paired: item i was scored by both) and on a
ratio statistic `sum(loss) / sum(denom)` over the items, which covers the metrics we compare:
MAE (loss = |error|, denom = 1), WAPE (loss = |error|, denom = |y|), error rate, Brier score.
Resampling is vectorised (a (n_boot, n) index or sign matrix) so thousands of resamples cost
milliseconds; that is what lets the tests check the false-positive rate over hundreds of null trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from fashionlens.errors import InvalidInputError


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-item values (vectorised: one (n_boot, n) draw)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def bootstrap_statistic_ci(statistic: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0,
                           confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of any statistic of n items (e.g. macro F1, which is not a mean):
    `statistic(positions)` is evaluated on each resample of the positions 0..n-1."""
    if n < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats = [statistic(idx) for idx in rng.integers(0, n, size=(n_boot, n))]
    lo, hi = np.nanquantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired test. `diff` = statistic(A) - statistic(B): negative = A has less loss."""

    diff: float
    ci95: tuple[float, float]
    p_value: float
    n: int
    stat_a: float
    stat_b: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def _prepare(loss_a, loss_b, denom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    # several losses per item (e.g. 12 weekly errors) are summed: the item is the resampling unit
    if a.ndim > 1:
        a = a.reshape(len(a), -1).sum(1)
        b = b.reshape(len(b), -1).sum(1)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"loss_a and loss_b must hold one loss per item; got shapes {a.shape} and {b.shape}")
    if len(a) < 2:
        raise InvalidInputError(f"need at least 2 paired items, got {len(a)}")
    if denom is None:
        d = np.ones_like(a)
    else:
        d = np.asarray(denom, dtype=np.float64)
        d = d.reshape(len(d), -1).sum(1) if d.ndim > 1 else d
        if d.shape != a.shape:
            raise ValueError(f"denom must have one value per item ({len(a)}), got shape {d.shape}")
        if d.sum() <= 0:
            raise InvalidInputError("denom sums to zero (e.g. WAPE on items that sold nothing): statistic undefined")
    if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(d).all()):
        raise ValueError("losses contain NaN or inf")
    return a, b, d


def ratio_statistic(loss, denom=None) -> float:
    """sum(loss) / sum(denom) (mean loss when denom is None)."""
    loss = np.asarray(loss, dtype=np.float64)
    d = np.ones(len(loss)) if denom is None else np.asarray(denom, dtype=np.float64)
    return float(loss.sum() / d.sum())


def paired_bootstrap(
    loss_a,
    loss_b,
    denom=None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedTest:
    """Paired bootstrap over items: CI of statistic(A) - statistic(B) and a two-sided p-value.

    Each resample draws n items with replacement (the same items for A and B). The CI is the
    percentile interval of the resampled differences; the p-value is that of the shifted bootstrap
    (resampled differences centred on the observed one stand in for the null distribution):
    p = (1 + #{|d* - d| >= |d|}) / (1 + n_boot).
    """
    a, b, d = _prepare(loss_a, loss_b, denom)
    n = len(a)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    den = d[idx].sum(1)
    den = np.where(den > 0, den, np.nan)  # a resample of only zero-denominator items says nothing
    boot = (a[idx].sum(1) - b[idx].sum(1)) / den
    boot = boot[np.isfinite(boot)]
    obs = float((a.sum() - b.sum()) / d.sum())
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    p = (1 + np.count_nonzero(np.abs(boot - obs) >= abs(obs))) / (1 + len(boot))
    return PairedTest(obs, (float(lo), float(hi)), float(min(p, 1.0)), n,
                      ratio_statistic(a, d), ratio_statistic(b, d), "paired bootstrap")


def permutation_test(
    loss_a,
    loss_b,
    denom=None,
    *,
    n_perm: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Paired (sign-flip) permutation test: under H0 the labels A/B of each item are exchangeable.

    Flipping the sign of item i's loss difference is swapping A and B on that item; the two-sided
    p-value is (1 + #{|stat*| >= |stat|}) / (1 + n_perm). The CI reported is the bootstrap one
    (a permutation test gives no interval), computed with the same seed.
    """
    a, b, d = _prepare(loss_a, loss_b, denom)
    n = len(a)
    diff = a - b
    obs = float(diff.sum() / d.sum())
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_perm, n)) * 2 - 1
    null = (signs @ diff) / d.sum()
    # a small tolerance so floating-point ties with the observed value count as ties
    p = (1 + np.count_nonzero(np.abs(null) >= abs(obs) - 1e-12 * max(1.0, abs(obs)))) / (1 + n_perm)
    ci = paired_bootstrap(a, b, d, n_boot=n_perm, seed=seed).ci95
    return PairedTest(obs, ci, float(min(p, 1.0)), n, ratio_statistic(a, d), ratio_statistic(b, d),
                      "sign-flip permutation")


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given); reject where adjusted <= alpha.

    Controls the family-wise error rate when several comparisons are made, without Bonferroni's
    loss of power: the k-th smallest p-value is multiplied by (m - k + 1), made monotone, capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("p_values must be a 1-d sequence")
    if ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj_sorted
    return out
