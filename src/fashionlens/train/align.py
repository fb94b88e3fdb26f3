"""Two-tower alignment: small projection heads on frozen image/text features, symmetric InfoNCE
(+ SupCon on catalog labels), early stopping on validation Recall@10. Runs on cached features."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionlens.encoders.nn import ProjectionHead
from fashionlens.errors import InvalidInputError, TrainingDivergedError
from fashionlens.evaluation.metrics import target_ranks
from fashionlens.train.config import AlignConfig
from fashionlens.train.losses import info_nce, supcon


@dataclass
class AlignResult:
    image_head: ProjectionHead
    text_head: ProjectionHead
    log_scale: float
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float


def _labels_to_ints(labels: np.ndarray | None, n: int) -> list[torch.Tensor]:
    """One int tensor per label column ((n,) labels = one column, (n, k) = k columns)."""
    if labels is None:
        return []
    cols = np.asarray(labels).astype(str).reshape(len(labels), -1)
    if len(cols) != n:
        raise ValueError(f"labels have {len(cols)} rows but there are {n} paired items")
    return [torch.as_tensor(np.unique(c, return_inverse=True)[1].reshape(-1)) for c in cols.T]


def train_alignment(
    image_features: np.ndarray,
    text_features: np.ndarray,
    labels: np.ndarray | None = None,
    config: AlignConfig | None = None,
    progress: bool = False,
) -> AlignResult:
    """Fit the two heads on (photo, name) pairs; rows of the two arrays are paired.

    `labels`: (n,) or (n, k) catalog labels; each column adds a SupCon term (e.g. type and colour),
    and the first column groups hard negatives.
    """
    cfg = config or AlignConfig()
    if len(image_features) != len(text_features):
        raise ValueError("image and text features must have the same number of rows (paired items)")
    if len(image_features) < 20:
        raise InvalidInputError(f"need at least 20 paired items to align, got {len(image_features)}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n = len(image_features)
    perm = rng.permutation(n)
    n_val = max(10, int(n * cfg.val_fraction))
    val, tr = perm[:n_val], perm[n_val:]
    xi = torch.as_tensor(image_features, dtype=torch.float32)
    xt = torch.as_tensor(text_features, dtype=torch.float32)
    ys = _labels_to_ints(labels, n)
    neighbours = None
    if cfg.hard_negatives > 1 and ys:
        from fashionlens.train.negatives import mine_neighbours, neighbour_batches

        neighbours = mine_neighbours(text_features, ys[0].numpy(), cfg.hard_negatives - 1)
    if cfg.supcon_weight <= 0:
        ys = []

    hi = ProjectionHead(xi.shape[1], cfg.dim, cfg.hidden, cfg.head, cfg.dropout)
    ht = ProjectionHead(xt.shape[1], cfg.dim, cfg.hidden, cfg.head, cfg.dropout)
    log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    params = [*hi.parameters(), *ht.parameters(), log_scale]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * max(1, int(np.ceil(len(tr) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    best: tuple[float, int, dict[str, Any]] = (-1.0, -1, {})
    history: list[dict[str, float]] = []
    t0 = time.time()
    epochs = range(cfg.epochs)
    if progress:
        from fashionlens.progress import track

        epochs = track(epochs, "aligning towers")  # type: ignore[assignment]
    for epoch in epochs:
        hi.train()
        ht.train()
        if neighbours is not None:
            batches = neighbour_batches(neighbours, tr, cfg.batch_size, cfg.hard_negatives, rng)
        else:
            order = tr[rng.permutation(len(tr))]
            batches = [b for s in range(0, len(order), cfg.batch_size) if len(b := order[s : s + cfg.batch_size]) >= 2]
        losses = []
        for b in batches:
            zi, zt = hi(xi[b]), ht(xt[b])
            loss = info_nce(zi, zt, log_scale)
            for y in ys:
                yb = y[b]
                loss = loss + cfg.supcon_weight * supcon(torch.cat([zi, zt]), torch.cat([yb, yb]), cfg.supcon_temperature)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"non-finite loss at epoch {epoch}; lower lr (now {cfg.lr})")
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        r10 = _val_recall(hi, ht, xi[val], xt[val])
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_recall@10": r10})
        if r10 > best[0]:
            best = (r10, epoch, {"i": _clone(hi), "t": _clone(ht), "s": float(log_scale.detach())})
        elif epoch - best[1] >= cfg.patience:
            break
    hi.load_state_dict(best[2]["i"])
    ht.load_state_dict(best[2]["t"])
    return AlignResult(hi.eval(), ht.eval(), best[2]["s"], history, best[1], time.time() - t0)


def _clone(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


@torch.no_grad()
def _val_recall(hi: ProjectionHead, ht: ProjectionHead, xi: torch.Tensor, xt: torch.Tensor) -> float:
    hi.eval()
    ht.eval()
    zi = nn.functional.normalize(hi(xi), dim=-1).numpy()
    zt = nn.functional.normalize(ht(xt), dim=-1).numpy()
    ranks = target_ranks(zt, zi, np.arange(len(zi)))
    return float(np.mean(ranks < 10))
