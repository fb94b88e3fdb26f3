"""The trained categorize heads are scikit-learn estimators (checked by scikit-learn's own suite)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from fashionlens.categorize.heads import (
    HEADS,
    EnsembleHead,
    MLPHead,
    ProbeHead,
    softmax,
    temperature,
)


def _blobs(n_per: int = 40, k: int = 3, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    y = np.repeat(np.arange(k), n_per)
    return (centres[y] + rng.normal(0, 1, (len(y), d))).astype(np.float32), y


def _known_failures(est: object) -> dict[str, str]:
    # sample weights equal to repeated rows only up to the optimiser's tolerance (scikit-learn asks
    # for 1e-7): L-BFGS stops at a slightly different point, minibatch AdamW draws other batches
    return {"check_sample_weight_equivalence_on_dense_data":
            "same objective as repeated rows, solved to an optimiser's tolerance, not to 1e-7"}


@parametrize_with_checks([ProbeHead(max_iter=50), MLPHead(hidden=16, epochs=6, lr=0.02, batch_size=64, device="cpu")],
                         expected_failed_checks=_known_failures)
def test_heads_pass_sklearn_estimator_checks(estimator, check, one_torch_thread):
    check(estimator)


@pytest.mark.parametrize("head", [ProbeHead(), MLPHead(hidden=32, epochs=15, lr=0.02, batch_size=32, device="cpu")],
                         ids=["probe", "head"])
def test_head_round_trips_through_state_and_params(head, one_torch_thread):
    X, y = _blobs()
    labels = np.asarray([3, 5, 9])[y]  # class labels need not be 0..k-1: classes_ holds them
    h = clone(head).fit(X, labels)
    assert h.classes_.tolist() == [3, 5, 9] and (h.predict(X) == labels).mean() > 0.9
    again = HEADS[h.kind].from_state(h.state(), h.params())
    np.testing.assert_allclose(again.predict_proba(X), h.predict_proba(X), atol=1e-6)
    assert again.classes_.tolist() == [3, 5, 9] and again.get_params() == h.get_params()


def test_mlp_head_holds_out_validation_inside_fit(one_torch_thread):
    X, y = _blobs(60)
    h = MLPHead(hidden=32, epochs=8, batch_size=32, validation_fraction=0.2, device="cpu").fit(X, y)
    assert "val_macro_f1" in h.history_[0]  # early stopping watched a held-out part of (X, y)
    none = MLPHead(hidden=32, epochs=3, batch_size=32, validation_fraction=0.0, device="cpu").fit(X, y)
    assert "val_macro_f1" not in none.history_[0] and none.best_epoch_ == 3  # nothing held out: the last epoch


def test_sample_weight_moves_the_probe(one_torch_thread):
    X, y = _blobs(40, k=2, d=2, seed=1)
    X[:, :] += np.random.default_rng(2).normal(0, 4, X.shape)  # overlapping classes: the weights decide
    plain = ProbeHead().fit(X, y)
    heavy = ProbeHead().fit(X, y, sample_weight=np.where(y == 1, 20.0, 1.0))
    assert (heavy.predict(X) == 1).sum() > (plain.predict(X) == 1).sum()


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    right = rng.random(400) < 0.7  # 70% correct, but every answer given with probability 0.98
    pred = np.where(right, y, (y + 1) % 3)
    P = np.full((400, 3), 0.01)
    P[np.arange(400), pred] = 0.98
    t = temperature(P, y)
    assert t > 1.5  # softer: the calibrated top probability comes near the 0.7 accuracy
    assert abs(softmax(np.log(P) / t).max(1).mean() - 0.7) < 0.05
    assert temperature(softmax(np.log(P) / t), y) == pytest.approx(1.0, abs=0.05)


def test_ensemble_averages_calibrated_members_and_round_trips(one_torch_thread):
    X, y = _blobs(40, k=3, d=4, seed=3)
    X += np.random.default_rng(4).normal(0, 2, X.shape).astype(np.float32)  # overlapping: members differ
    members = [ProbeHead().fit(X, y), MLPHead(hidden=16, epochs=8, lr=0.02, batch_size=32, device="cpu").fit(X, y)]
    ens = EnsembleHead.calibrated(members, [m.predict_proba(X) for m in members], y)
    want = np.mean([softmax(np.log(m.predict_proba(X)) / t) for m, t in zip(members, ens.temperatures)], 0)
    np.testing.assert_allclose(ens.predict_proba(X), want, atol=1e-5)
    assert ens.temperatures != [1.0, 1.0]
    again = HEADS["ensemble"].from_state(ens.state(), ens.params())
    np.testing.assert_allclose(again.predict_proba(X), ens.predict_proba(X), atol=1e-6)
    assert again.temperatures == ens.temperatures and again.classes_.tolist() == [0, 1, 2]
