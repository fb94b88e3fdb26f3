"""One training engine: every trainer in fashionlens is a small task object driven by `fit`.

The loop owns what all trainers share: seeding, the optimizer (AdamW over the task's parameter
groups) and its per-step schedule, devices and mixed precision through accelerate, gradient
accumulation and clipping, the non-finite-loss stop, validation after each epoch with early
stopping and the best state, and, given a run folder, atomic per-epoch checkpoints and resume.
A task says only what varies: its module and parameters, the loss on one batch, a validation score.
The split follows open_clip's `train_one_epoch` and sentence-transformers' trainer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from fashionlens.config import Config
from fashionlens.encoders.nn import load_trainable_state, trainable_state
from fashionlens.errors import InvalidInputError, TrainingDivergedError
from fashionlens.train.runs import RunDir

SCHEDULES = ("constant", "cosine", "warmup_cosine", "onecycle")


class NonFiniteLossError(TrainingDivergedError):
    """Training produced a NaN/inf loss; the message says where and what was kept."""


@dataclass
class FitConfig(Config):
    """How `fit` trains; each task fills it from its own config."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | cosine | warmup_cosine | onecycle (per optimizer step)
    warmup: float = 0.0  # share of the steps spent warming up (warmup_cosine, onecycle)
    clip_grad: float | None = None
    monitor: str | None = None  # metric to track (a key `validate` returns, or "train_loss"); None = keep the last epoch
    monitor_mode: str = "max"  # "max": higher is better; "min": lower is better (e.g. train_loss)
    patience: int | None = None  # epochs without a better validation score before stopping
    min_delta: float = 0.0  # a validation score must beat the best by more than this
    validate_first: bool = False  # score the untrained model as epoch -1: training must beat it
    seed: int = 0
    precision: str = "no"  # accelerate mixed precision: "no" | "fp16" | "bf16" (GPUs)
    device: str = "auto"
    accumulate: int = 1
    description: str = "training"  # progress-bar label
    progress_batches: bool = False  # long epochs: a bar per epoch over its batches

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"unknown schedule '{self.schedule}' (use one of {', '.join(SCHEDULES)})")
        if self.epochs < 1:
            raise InvalidInputError(f"epochs must be >= 1, got {self.epochs}")


class TrainTask(Protocol):
    """What a trainer supplies. `validate` returns validation metrics (the history rows hold them;
    `FitConfig.monitor` names the one to maximise) or None. Batches go to `self.device`, which
    `fit` sets before training."""

    module: nn.Module

    def param_groups(self) -> list[dict[str, Any]]: ...  # [{"params": [...], "lr": optional, else FitConfig.lr}]

    def n_batches(self) -> int: ...

    def batches(self, epoch: int) -> Iterable[Any]: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def validate(self) -> dict[str, float] | None: ...


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    seconds: float
    stopped: str
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_lambda(cfg: FitConfig, total: int) -> Callable[[int], float]:
    warm = max(1, int(cfg.warmup * total))

    def cosine(s: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, total))))

    if cfg.schedule == "cosine":
        return cosine
    if cfg.schedule == "warmup_cosine":
        return lambda s: min(1.0, (s + 1) / warm) * cosine(s)
    if cfg.schedule == "onecycle":  # torch's OneCycleLR without momentum cycling: lr/25 up, then to ~0
        peak = max(1.0, cfg.warmup * total - 1)  # a warm-up of one step divides by zero in torch's

        def one(s: int) -> float:
            if s < peak:
                return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * s / peak))
            t = min(1.0, (s - peak) / max(1.0, total - 1 - peak))
            return 4e-6 + (1 - 4e-6) * 0.5 * (1 + math.cos(math.pi * t))
        return one
    return lambda s: 1.0


def _beta1(cfg: FitConfig, total: int) -> Callable[[int], float] | None:
    """onecycle also cycles Adam's beta1 against the lr (0.95 -> 0.85 -> 0.95), as torch's does."""
    if cfg.schedule != "onecycle":
        return None
    rise = _lr_lambda(cfg, total)
    return lambda s: 0.95 - 0.10 * (rise(s) - 4e-6) / (1 - 4e-6)


def fit(task: TrainTask, config: FitConfig, run: RunDir | None = None, resume: bool = False,
        progress: bool = False, log: Callable[[dict[str, Any]], None] | None = None) -> FitResult:
    """Train `task` and leave its module holding the best epoch's weights (the last one without
    validation). With `run`, every epoch ends in atomic `last` (and `best`) checkpoints; `resume`
    continues after the last finished epoch with the same draws an unbroken run would make."""
    from accelerate import Accelerator

    cfg = config
    seed_everything(cfg.seed)
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    acc = Accelerator(mixed_precision=cfg.precision if not cpu else "no",
                      gradient_accumulation_steps=cfg.accumulate, cpu=cpu)
    groups = [{"params": [p for p in g["params"] if p.requires_grad], "lr": g.get("lr", cfg.lr)}
              for g in task.param_groups()]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise InvalidInputError(f"{cfg.description}: nothing to train (no parameter requires a gradient)")
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * max(1, math.ceil(task.n_batches() / cfg.accumulate))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total))
    beta1 = _beta1(cfg, total)
    task.device = acc.device  # type: ignore[attr-defined]  # where the task puts its batches
    if getattr(task, "loader", None) is not None:  # sharded across processes on several GPUs
        task.loader = acc.prepare(task.loader)  # type: ignore[attr-defined]
    model, opt, sched = acc.prepare(task.module, opt, sched)
    core = acc.unwrap_model(model)
    params = [p for g in groups for p in g["params"]]

    state = _State()
    if resume and run is not None and run.has_checkpoint("last"):
        state.restore(run, core, opt, sched)  # its history rows were logged by the first run
    elif cfg.validate_first:
        core.eval()
        state.record(-1, {"train_loss": float("nan"), **_validate(task)}, core, cfg)
        if log is not None:
            log(state.history[-1])
    t0 = time.time()
    patience = cfg.patience if cfg.patience is not None else math.inf
    loader = getattr(task, "loader", None)
    epochs: Iterable[int] = range(state.start, cfg.epochs)
    if progress and not cfg.progress_batches:
        from fashionlens.progress import track

        epochs = track(epochs, cfg.description)
    for epoch in epochs:
        if state.bad >= patience:
            break
        seed_everything(cfg.seed + epoch + 1)  # a resumed epoch draws what an unbroken run draws
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)  # accelerate's loader would otherwise restart its count on resume
        model.train()
        if hasattr(task, "train_mode"):
            task.train_mode()  # type: ignore[attr-defined]
        te, losses = time.time(), []
        batches = task.batches(epoch)
        if progress and cfg.progress_batches:
            from fashionlens.progress import track

            batches = track(batches, f"{cfg.description}, epoch {epoch + 1}/{cfg.epochs}")
        for batch in batches:
            with acc.accumulate(model):
                with acc.autocast():
                    loss = task.loss(model, batch)
                if not torch.isfinite(loss):
                    kept = (f"the last good checkpoint is kept in {run.ckpt / 'last'}" if run and run.has_checkpoint("last")
                            else "no epoch had finished, so there is no checkpoint")
                    if run is not None:
                        run.log({"event": "non_finite_loss", "epoch": epoch, "step": state.step, "loss": str(loss.item())})
                    raise NonFiniteLossError(
                        f"{cfg.description}: non-finite loss ({loss.item()}) at epoch {epoch}, step {state.step}; "
                        f"{kept}. Lower the learning rate (now {cfg.lr}) or train in full precision.")
                acc.backward(loss)
                if acc.sync_gradients:
                    if cfg.clip_grad:
                        acc.clip_grad_norm_(params, cfg.clip_grad)
                    state.step += 1
                opt.step()
                sched.step()
                if beta1 is not None:
                    for g in opt.param_groups:
                        g["betas"] = (beta1(state.step), g["betas"][1])
                opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        model.eval()
        row = {"step": state.step, "train_loss": float(np.mean(losses)) if losses else float("nan"), **_validate(task),
               "lr": sched.get_last_lr()[0], "seconds": round(time.time() - te, 3)}
        state.record(epoch, row, core, cfg)
        if log is not None:
            log(state.history[-1])
        if run is not None and acc.is_main_process:  # several GPUs: one writer
            state.save(run, core, opt, sched, cfg.to_dict())
        acc.wait_for_everyone()
    stopped = f"early stop: no better validation score for {cfg.patience} epochs" if state.bad >= patience else "max epochs"
    if state.best_weights is not None:
        load_trainable_state(core, state.best_weights)
    core.eval()
    return FitResult(state.history, state.best_epoch, state.best, time.time() - t0, stopped)


def _validate(task: TrainTask) -> dict[str, float]:
    with torch.no_grad():
        out = task.validate()
    return dict(out) if out else {}


class _State:
    """Where training stands: what a checkpoint holds besides the weights."""

    def __init__(self) -> None:
        self.start, self.step, self.bad = 0, 0, 0
        self.best, self.best_epoch = -math.inf, -1
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.history: list[dict[str, Any]] = []

    def record(self, epoch: int, row: dict[str, Any], module: nn.Module, cfg: FitConfig) -> None:
        score = row.get(cfg.monitor) if cfg.monitor else None
        if score is not None and cfg.monitor_mode == "min":
            score = -score
        improved = score is None or score > self.best + cfg.min_delta  # no validation: keep the newest epoch
        if improved:
            self.best, self.best_epoch, self.bad = (score if score is not None else -math.inf), epoch, 0
            self.best_weights = trainable_state(module)
        elif epoch >= 0:
            self.bad += 1
        self.history.append({"epoch": epoch, **row, "best": improved})
        self.start = epoch + 1

    def save(self, run: RunDir, module: nn.Module, opt: Any, sched: Any, config: dict[str, Any]) -> None:
        meta = {"epoch": self.start - 1, "step": self.step, "best": _json_float(self.best),
                "best_epoch": self.best_epoch, "bad_epochs": self.bad, "history": self.history,
                "scheduler": sched.state_dict()}
        if self.best_epoch == self.start - 1 and self.best_weights is not None:
            run.save_checkpoint("best", self.best_weights, {"epoch": self.best_epoch, "score": meta["best"]},
                                config=config)
        run.save_checkpoint("last", trainable_state(module), meta, opt, config)

    def restore(self, run: RunDir, module: nn.Module, opt: Any, sched: Any) -> None:
        weights, meta, opt_state = run.load_checkpoint("last")
        load_trainable_state(module, weights)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        sched.load_state_dict(meta["scheduler"])
        self.start, self.step, self.bad = meta["epoch"] + 1, meta["step"], meta["bad_epochs"]
        self.best, self.best_epoch = float(meta["best"]), meta["best_epoch"]
        self.history = meta.get("history", [])  # runs saved before the engine kept no history
        if run.has_checkpoint("best"):
            self.best_weights = run.load_checkpoint("best")[0]
        run.log({"event": "resume", "epoch": self.start, "step": self.step})


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def minimize_full_batch(params: list[nn.Parameter], loss_fn: Callable[[], torch.Tensor], max_iter: int = 200) -> float:
    """Full-batch L-BFGS (strong Wolfe line search) for small convex problems such as a logistic
    probe: the one place besides `fit` that steps an optimizer. Returns the final loss."""
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=1e-6, tolerance_change=1e-9,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"full-batch fit: non-finite loss ({loss.item()})")
        loss.backward()
        return loss

    opt.step(closure)  # returns the FIRST closure's loss (with its graph), not the final one
    with torch.no_grad():
        return float(loss_fn())
