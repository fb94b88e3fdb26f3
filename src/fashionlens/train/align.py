"""Two-tower alignment: small projection heads on frozen image/text features, symmetric InfoNCE
(+ SupCon on catalog labels), early stopping on validation Recall@10. Runs on cached features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionlens.encoders.nn import ProjectionHead
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.metrics import target_ranks
from fashionlens.train.config import AlignConfig
from fashionlens.train.engine import FitConfig, fit
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
        from fashionlens.train.negatives import mine_neighbours

        neighbours = mine_neighbours(text_features, ys[0].numpy(), cfg.hard_negatives - 1)
    if cfg.supcon_weight <= 0:
        ys = []

    heads = _TwoHeads(ProjectionHead(xi.shape[1], cfg.dim, cfg.hidden, cfg.head, cfg.dropout),
                      ProjectionHead(xt.shape[1], cfg.dim, cfg.hidden, cfg.head, cfg.dropout))
    task = _AlignTask(heads, xi, xt, ys, tr, val, neighbours, rng, cfg)
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine",
                        clip_grad=5.0, monitor="val_recall@10", patience=cfg.patience, seed=cfg.seed,
                        device="cpu", description="aligning towers")  # tiny heads: the CPU is fastest
    res = fit(task, fit_cfg, progress=progress)
    history = [{k: r[k] for k in ("epoch", "train_loss", "val_recall@10")} for r in res.history]
    return AlignResult(heads.image.eval(), heads.text.eval(), float(heads.log_scale.detach()), history,
                       res.best_epoch, res.seconds)


class _TwoHeads(nn.Module):
    def __init__(self, image: ProjectionHead, text: ProjectionHead):
        super().__init__()
        self.image, self.text = image, text
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))


class _AlignTask:
    """Engine task: paired batches (shuffled, or groups of look-alike names), InfoNCE (optionally
    against a cross-batch memory too) + one SupCon term per label column, validation text→image
    Recall@10 on held-out pairs."""

    device = torch.device("cpu")

    def __init__(self, heads: _TwoHeads, xi: torch.Tensor, xt: torch.Tensor, ys: list[torch.Tensor],
                 tr: np.ndarray, val: np.ndarray, neighbours: Any, rng: np.random.Generator, cfg: AlignConfig):
        self.module, self.xi, self.xt, self.ys, self.tr, self.val = heads, xi, xt, ys, tr, val
        self.neighbours, self.rng, self.cfg = neighbours, rng, cfg
        self.epoch = 0
        # cross-batch memory (Wang et al. 2020, XBM): item rows and detached head outputs, newest first
        self.mem_rows = np.zeros(0, dtype=np.int64)
        self.mem_i = self.mem_t = torch.zeros(0, cfg.dim)

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.module.parameters())}]

    def n_batches(self) -> int:
        return max(1, int(np.ceil(len(self.tr) / self.cfg.batch_size)))

    def batches(self, epoch: int) -> Any:
        cfg = self.cfg
        self.epoch = epoch
        if self.neighbours is not None:
            from fashionlens.train.negatives import neighbour_batches

            return neighbour_batches(self.neighbours, self.tr, cfg.batch_size, cfg.hard_negatives, self.rng)
        order = self.tr[self.rng.permutation(len(self.tr))]
        return [b for s in range(0, len(order), cfg.batch_size) if len(b := order[s : s + cfg.batch_size]) >= 2]

    def loss(self, model: nn.Module, b: np.ndarray) -> torch.Tensor:
        zi, zt = model.image(self.xi[b]), model.text(self.xt[b])
        loss = info_nce(zi, zt, model.log_scale, *self._memory(b))
        self._remember(b, zi, zt)
        for y in self.ys:
            yb = y[b]
            loss = loss + self.cfg.supcon_weight * supcon(torch.cat([zi, zt]), torch.cat([yb, yb]),
                                                          self.cfg.supcon_temperature)
        return loss

    def _memory(self, b: np.ndarray) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Extra InfoNCE negatives: the memory without the batch's own items. Unused in the first
        epoch, while the heads still move fast and remembered outputs go stale within a few steps."""
        if self.cfg.memory <= 0 or self.epoch < 1 or not len(self.mem_rows):
            return None, None
        keep = torch.as_tensor(~np.isin(self.mem_rows, b))
        return self.mem_i[keep], self.mem_t[keep]

    def _remember(self, b: np.ndarray, zi: torch.Tensor, zt: torch.Tensor) -> None:
        if self.cfg.memory > 0:
            m = self.cfg.memory
            self.mem_rows = np.concatenate([b, self.mem_rows])[:m]
            self.mem_i = torch.cat([zi.detach(), self.mem_i])[:m]
            self.mem_t = torch.cat([zt.detach(), self.mem_t])[:m]

    def validate(self) -> dict[str, float]:
        zi = nn.functional.normalize(self.module.image(self.xi[self.val]), dim=-1).numpy()
        zt = nn.functional.normalize(self.module.text(self.xt[self.val]), dim=-1).numpy()
        return {"val_recall@10": float(np.mean(target_ranks(zt, zi, np.arange(len(zi))) < 10))}
