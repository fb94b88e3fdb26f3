"""The one training engine: best state, early stopping, non-finite stop, schedules, resume."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from fashionlens.train.engine import (
    FitConfig,
    NonFiniteLossError,
    _lr_lambda,
    fit,
    minimize_full_batch,
)
from fashionlens.train.runs import RunDir


class Regression:
    """y = X w* + noise; validation = minus the validation MSE (higher is better)."""

    device = torch.device("cpu")

    def __init__(self, n: int = 256, d: int = 8, seed: int = 0, scripted: list[float] | None = None):
        g = torch.Generator().manual_seed(seed)
        self.X = torch.randn(n, d, generator=g)
        self.y = self.X @ torch.randn(d, 1, generator=g) + 0.01 * torch.randn(n, 1, generator=g)
        torch.manual_seed(seed)
        self.module = nn.Linear(d, 1)
        self.scripted = list(scripted or [])
        self.weights_at: dict[int, torch.Tensor] = {}
        self.epoch = -1

    def param_groups(self):
        return [{"params": list(self.module.parameters())}]

    def n_batches(self) -> int:
        return 8

    def batches(self, epoch: int):
        self.epoch = epoch
        order = torch.randperm(len(self.X))
        return (order[s : s + 32] for s in range(0, len(order), 32))

    def loss(self, model, b):
        return nn.functional.mse_loss(model(self.X[b]), self.y[b])

    def validate(self):
        self.weights_at[self.epoch] = self.module.weight.detach().clone()
        if self.scripted:
            return {"score": self.scripted.pop(0)}
        return {"score": -float(nn.functional.mse_loss(self.module(self.X), self.y))}


def test_fit_lowers_the_loss_and_keeps_the_best_epoch() -> None:
    task = Regression()
    res = fit(task, FitConfig(epochs=15, lr=0.05, monitor="score"))
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.1 * losses[0]
    assert res.best_score == max(h["score"] for h in res.history)
    assert res.best_epoch == int(np.argmax([h["score"] for h in res.history]))


def test_early_stopping_restores_the_best_weights() -> None:
    task = Regression(scripted=[0.1, 0.5, 0.3, 0.2, 0.1, 0.9])
    res = fit(task, FitConfig(epochs=6, lr=0.05, monitor="score", patience=2))
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]  # two epochs without gain after epoch 1
    assert res.best_epoch == 1 and res.stopped.startswith("early stop")
    assert torch.equal(task.module.weight.detach(), task.weights_at[1])


def test_validate_first_keeps_the_untrained_model_when_nothing_beats_it() -> None:
    task = Regression(scripted=[0.9, 0.1, 0.2])
    before = task.module.weight.detach().clone()
    res = fit(task, FitConfig(epochs=2, lr=0.05, monitor="score", validate_first=True))
    assert res.best_epoch == -1 and res.history[0]["epoch"] == -1
    assert torch.equal(task.module.weight.detach(), before)


def test_without_validation_the_last_epoch_is_kept() -> None:
    task = Regression()
    task.validate = lambda: None  # type: ignore[method-assign]
    res = fit(task, FitConfig(epochs=3, lr=0.05))
    assert res.best_epoch == 2


def test_a_non_finite_loss_stops_with_a_clear_error() -> None:
    task = Regression()
    task.y[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* epoch 0"):
        fit(task, FitConfig(epochs=2, description="toy"))


def test_schedules() -> None:
    cos = _lr_lambda(FitConfig(schedule="cosine"), 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    warm = _lr_lambda(FitConfig(schedule="warmup_cosine", warmup=0.1), 100)
    assert warm(0) == pytest.approx(0.1) and warm(9) == pytest.approx(math.cos(math.pi * 0.09) * 0.5 + 0.5)
    one = _lr_lambda(FitConfig(schedule="onecycle", warmup=0.1), 100)  # torch OneCycleLR's shape
    assert one(0) == pytest.approx(0.04) and one(9) == pytest.approx(1.0) and one(99) < 1e-5
    ref = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), max_lr=1.0,
                                              total_steps=100, pct_start=0.1, cycle_momentum=False)
    lrs = []
    for _ in range(100):
        lrs.append(ref.get_last_lr()[0])
        ref.optimizer.step()
        ref.step()
    assert [one(s) for s in range(0, 100, 7)] == pytest.approx(lrs[::7], abs=0.02)
    assert _lr_lambda(FitConfig(schedule="onecycle", warmup=0.1), 10)(1) > 0  # 1-step warm-up: no ZeroDivision
    with pytest.raises(ValueError, match="unknown schedule"):
        FitConfig(schedule="triangle")


def test_a_resumed_run_ends_where_an_unbroken_one_does(tmp_path) -> None:
    cfg = FitConfig(epochs=5, lr=0.05, monitor="score", schedule="cosine", seed=3)
    unbroken = Regression()
    first = fit(unbroken, cfg, RunDir(tmp_path / "a"))

    class Crash(Exception):
        pass

    def crash_after_two(row):
        if row["epoch"] == 2:
            raise Crash

    broken = Regression()
    with pytest.raises(Crash):
        fit(broken, cfg, RunDir(tmp_path / "b"), log=crash_after_two)
    resumed = Regression()
    res = fit(resumed, cfg, RunDir(tmp_path / "b"), resume=True)
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3, 4]
    assert [h["score"] for h in res.history] == pytest.approx([h["score"] for h in first.history])
    assert torch.allclose(resumed.module.weight, unbroken.module.weight, atol=1e-6)


def test_monitor_min_keeps_the_lowest_training_loss() -> None:
    task = Regression()
    task.validate = lambda: None  # type: ignore[method-assign]
    res = fit(task, FitConfig(epochs=4, lr=0.05, monitor="train_loss", monitor_mode="min"))
    losses = [h["train_loss"] for h in res.history]
    assert res.best_epoch == int(np.argmin(losses)) and res.best_score == pytest.approx(-min(losses))


def test_full_batch_lbfgs_solves_least_squares_without_warnings() -> None:
    torch.manual_seed(0)
    X, w_true = torch.randn(64, 3), torch.tensor([1.0, -2.0, 0.5])
    y = X @ w_true
    w = nn.Parameter(torch.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a loss returned with its graph warned on every probe fit
        loss = minimize_full_batch([w], lambda: ((X @ w - y) ** 2).mean())
    assert isinstance(loss, float) and loss < 1e-8
    assert torch.allclose(w.detach(), w_true, atol=1e-4)
