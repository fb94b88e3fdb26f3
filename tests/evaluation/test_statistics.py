"""Paired bootstrap, permutation test and Holm correction: slow references and error rates."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.evaluation.statistics import holm, paired_bootstrap, permutation_test


def _slow_bootstrap(a, b, d, n_boot, seed, confidence=0.95):
    """Loop reference: same resamples as the vectorised code (same rng, same draw order)."""
    n = len(a)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    obs = (sum(a) - sum(b)) / sum(d)
    diffs = []
    for row in idx:
        num = sum(a[i] - b[i] for i in row)
        den = sum(d[i] for i in row)
        diffs.append(num / den)
    diffs = np.array(diffs)
    lo, hi = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    extreme = sum(1 for v in diffs if abs(v - obs) >= abs(obs))
    return obs, (lo, hi), (1 + extreme) / (1 + n_boot)


def _slow_permutation(a, b, d, n_perm, seed):
    n = len(a)
    signs = np.random.default_rng(seed).integers(0, 2, size=(n_perm, n)) * 2 - 1
    diff = [a[i] - b[i] for i in range(n)]
    obs = sum(diff) / sum(d)
    extreme = 0
    for row in signs:
        stat = sum(s * x for s, x in zip(row, diff, strict=True)) / sum(d)
        extreme += abs(stat) >= abs(obs) - 1e-12 * max(1.0, abs(obs))
    return obs, (1 + extreme) / (1 + n_perm)


def _slow_holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


@pytest.mark.parametrize("with_denom", [False, True])
def test_bootstrap_matches_slow_reference(with_denom):
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2, size=40), rng.gamma(2.2, size=40)
    d = rng.uniform(1, 5, size=40) if with_denom else np.ones(40)
    r = paired_bootstrap(a, b, d if with_denom else None, n_boot=300, seed=7)
    obs, ci, p = _slow_bootstrap(a, b, d, 300, 7)
    assert r.diff == pytest.approx(obs)
    assert r.ci95 == pytest.approx(ci)
    assert r.p_value == pytest.approx(p)
    assert r.stat_a == pytest.approx(a.sum() / d.sum()) and r.n == 40


def test_permutation_matches_slow_reference():
    rng = np.random.default_rng(2)
    a, b, d = rng.gamma(2, size=30), rng.gamma(2, size=30), rng.uniform(1, 3, size=30)
    r = permutation_test(a, b, d, n_perm=300, seed=3)
    obs, p = _slow_permutation(a, b, d, 300, 3)
    assert r.diff == pytest.approx(obs)
    assert r.p_value == pytest.approx(p)


def test_holm_matches_slow_reference_and_known_values():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 12))
        assert holm(p) == pytest.approx(_slow_holm(list(p)))
    # textbook example: 0.01, 0.04, 0.03 with m = 3 -> 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        holm([0.5, 1.5])


def test_real_difference_is_detected():
    rng = np.random.default_rng(0)
    y = rng.gamma(3, size=200)
    err_a = np.abs(rng.normal(0, 0.5, 200))  # A is twice as accurate as B
    err_b = np.abs(rng.normal(0, 1.0, 200))
    for test in (paired_bootstrap, permutation_test):
        r = test(err_a, err_b, y, seed=0)
        assert r.diff < 0 and r.p_value < 0.01
        assert r.ci95[1] < 0


@pytest.mark.parametrize("test", [paired_bootstrap, permutation_test])
def test_null_false_positive_rate_is_nominal(test):
    """Exchangeable A/B losses (the null is true): p < 0.05 in 2%..8% of 400 trials."""
    rng = np.random.default_rng(123)
    n_trials, n = 400, 60
    hits = 0
    for t in range(n_trials):
        y = rng.gamma(2, size=n) + 0.5
        base = rng.gamma(2, size=n)  # an item-level difficulty shared by A and B (pairing matters)
        a = base * rng.uniform(0.5, 1.5, size=n)
        b = base * rng.uniform(0.5, 1.5, size=n)
        kw = {"n_boot": 500} if test is paired_bootstrap else {"n_perm": 500}
        hits += test(a, b, y, seed=t, **kw).p_value < 0.05
    assert 0.02 <= hits / n_trials <= 0.08, hits / n_trials


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="one loss per item"):
        paired_bootstrap(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="sums to zero"):
        paired_bootstrap(np.ones(3), np.ones(3), np.zeros(3))


def test_bootstrap_ci_matches_a_slow_reference_and_covers_the_mean():
    from fashionlens.evaluation.statistics import bootstrap_ci

    v = np.random.default_rng(5).random(300) < 0.3
    lo, hi = bootstrap_ci(v, n_boot=500, seed=1)
    rng = np.random.default_rng(1)
    means = [v[rng.integers(0, len(v), size=len(v))].mean() for _ in range(500)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert lo < v.mean() < hi and hi - lo < 0.15
    assert np.isnan(bootstrap_ci(np.array([1.0]))[0])
