"""Cross-modal re-ranker: starts as the first stage, learns what plain cosine misses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionlens.evaluation.metrics import target_ranks
from fashionlens.train.reranker import CrossModalReranker, RerankerConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Photos g; names q = g on 6 informative dims + pure noise on 10 others (cosine is diluted)."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, 16))
    g[:, 6:] *= 0.3
    q = np.concatenate([g[:, :6] + 0.3 * rng.normal(size=(n, 6)), 1.5 * rng.normal(size=(n, 10))], 1)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(q), unit(g)


def test_untrained_reranker_keeps_first_stage_order():
    q, g = _pairs(200, 0)
    rr = CrossModalReranker(RerankerConfig(k=10, epochs=1, lr=0.0)).fit(q, g)
    with torch.no_grad():
        rr.model_.out.weight.zero_()
    first = target_ranks(q, g, np.arange(200))
    np.testing.assert_array_equal(np.minimum(rr.ranks(q, g, np.arange(200)), 10), np.minimum(first, 10))


def test_reranker_improves_top_ranks_on_held_out_queries(tmp_path):
    q, g = _pairs(1000, 1)
    qt, gt = _pairs(400, 2)
    before = target_ranks(qt, gt, np.arange(400))
    rr = CrossModalReranker(RerankerConfig(k=20, epochs=5, lr=3e-3)).fit(q, g)
    assert rr.history_[-1]["train_loss"] < rr.history_[0]["train_loss"]
    after = rr.ranks(qt, gt, np.arange(400))
    assert np.mean(after < 1) > np.mean(before < 1) + 0.05
    # only the top-k is reordered: queries whose photo was beyond it keep a rank >= k
    assert (after[before >= 20] >= 20).all()
    rr.save(tmp_path / "rr")
    again = CrossModalReranker.load(tmp_path / "rr")
    np.testing.assert_array_equal(again.ranks(qt, gt, np.arange(400)), after)
