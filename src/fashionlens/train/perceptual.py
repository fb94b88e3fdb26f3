"""Perceptual alignment training (DreamSim-style): an MLP head on frozen features, or LoRA on a
backbone, fitted to human "which looks more similar" triplets; early stopping on validation 2AFC.

Distances are cosine distances d = 1 - cos(ref, candidate); `s = d_right - d_left` > 0 means the
model calls the left candidate closer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashionlens.errors import InvalidInputError, TrainingDivergedError


# ---- losses (pure functions) ------------------------------------------------------------------
def hinge_triplet_loss(d_left: torch.Tensor, d_right: torch.Tensor, p_left: torch.Tensor,
                       margin: float = 0.05) -> torch.Tensor:
    """DreamSim hinge: mean over non-tied triplets of max(0, margin - t * (d_right - d_left)),
    t = +1 when most votes say left, -1 when they say right. Ties carry no hinge signal."""
    t = torch.sign(2.0 * p_left - 1.0)
    w = (t != 0).to(d_left.dtype)
    h = torch.clamp(margin - t * (d_right - d_left), min=0.0)
    return (w * h).sum() / w.sum().clamp(min=1.0)


def logistic_triplet_loss(d_left: torch.Tensor, d_right: torch.Tensor, p_left: torch.Tensor,
                          temperature: float = 0.05) -> torch.Tensor:
    """Binary cross-entropy of sigmoid((d_right - d_left) / T) against the vote share for left
    (soft targets, so ties pull the two distances together)."""
    return F.binary_cross_entropy_with_logits((d_right - d_left) / temperature, p_left)


def triplet_distances(emb: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine distances ref-left and ref-right of (n, 3) rows into the embedding table."""
    z = F.normalize(emb, dim=-1)
    r, a, b = z[index[:, 0]], z[index[:, 1]], z[index[:, 2]]
    return 1.0 - (r * a).sum(-1), 1.0 - (r * b).sum(-1)


# ---- config & head ----------------------------------------------------------------------------
@dataclass
class PerceptualConfig:
    """One training run; saved back into the run directory as config.yaml."""

    triplets: str = ""  # NIGHTS-layout or plain CSV
    out: str = "runs/perceptual"
    encoders: list[str] = field(default_factory=lambda: ["efficientnet-lite0"])  # >1: ensemble
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to every create()
    mode: str = "mlp"  # "mlp" (head on frozen features) or "lora" (adapters in the backbone)
    loss: str = "hinge"  # "hinge" or "logistic"
    margin: float = 0.05  # DreamSim
    temperature: float = 0.05
    hidden: int = 512
    dropout: float = 0.1
    lora_r: int = 16  # DreamSim
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["qkv"])
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    n_views: int = 4  # cached photometric views per image (view 0 = as is); lora augments on the fly
    aug_strength: float = 2.0  # as strong as the "other lighting" test: same clean 2AFC, robust to relighting (docs/bench/perceptual.md)
    eval_lighting: float = 2.0  # strength of the "other lighting" test views (0 = skip)
    split: str = "reference"  # "reference": hold out reference images; "column": use the split column
    test_size: float = 0.2
    val_size: float = 0.15
    seed: int = 0
    cache_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_yaml(cls, path: str) -> PerceptualConfig:
        from pathlib import Path

        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config not found: {p}")
        data = yaml.safe_load(p.read_text()) or {}
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInputError(f"{p}: unknown config key(s) {', '.join(unknown)}")
        return cls(**data)


class PerceptualHead(nn.Module):
    """Linear skip (identity at start) + residual MLP whose last layer starts at zero, so training
    starts exactly at the untuned encoder's 2AFC."""

    def __init__(self, dim: int, hidden: int = 512, dropout: float = 0.1):
        super().__init__()
        self.skip = nn.Linear(dim, dim)
        nn.init.eye_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.mlp(x)


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_val_2afc: float
    seconds: float


def _loss_fn(cfg: PerceptualConfig) -> Callable[..., torch.Tensor]:
    if cfg.loss == "hinge":
        return lambda a, b, p: hinge_triplet_loss(a, b, p, cfg.margin)
    if cfg.loss == "logistic":
        return lambda a, b, p: logistic_triplet_loss(a, b, p, cfg.temperature)
    raise InvalidInputError(f"unknown loss '{cfg.loss}' (use 'hinge' or 'logistic')")


def _vote_2afc(d_l: torch.Tensor, d_r: torch.Tensor, p: np.ndarray) -> float:
    from fashionlens.tasks.perceptual import two_afc_scores

    return float(two_afc_scores(d_l.numpy(), d_r.numpy(), p).mean())


def _early_stop_loop(cfg: PerceptualConfig, module: nn.Module, params: list[nn.Parameter],
                     n_train: int, step: Callable[[np.ndarray], torch.Tensor],
                     validate: Callable[[], float], progress: bool) -> FitResult:
    """Shared epoch loop: AdamW, shuffled batches of triplets, keep the best validation state."""
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0 = time.time()
    module.eval()
    best = (validate(), -1, {k: v.detach().clone() for k, v in module.state_dict().items()})
    history = [{"epoch": -1, "train_loss": float("nan"), "val_2afc": best[0]}]
    epochs: Any = range(cfg.epochs)
    if progress:
        from fashionlens.progress import track

        epochs = track(epochs, "perceptual training")
    for epoch in epochs:
        module.train()
        for m in module.modules():  # BatchNorm keeps its pretrained statistics (LoRA on CNNs)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        order = rng.permutation(n_train)
        losses = []
        for s in range(0, n_train, cfg.batch_size):
            loss = step(order[s : s + cfg.batch_size])
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"non-finite loss at epoch {epoch}; lower lr (now {cfg.lr})")
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        module.eval()
        val = validate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_2afc": val})
        if val > best[0]:
            best = (val, epoch, {k: v.detach().clone() for k, v in module.state_dict().items()})
        elif epoch - best[1] >= cfg.patience:
            break
    module.load_state_dict(best[2])
    module.eval()
    return FitResult(history, best[1], best[0], time.time() - t0)


def fit_head(features: np.ndarray, train_index: np.ndarray, train_p: np.ndarray,
             val_index: np.ndarray, val_p: np.ndarray, config: PerceptualConfig | None = None,
             progress: bool = False) -> tuple[PerceptualHead, FitResult]:
    """Fit a PerceptualHead on frozen features (n_images, n_views, dim) or (n_images, dim).

    Each training triplet uses a random view of each of its images (photometric augmentation);
    validation uses view 0 (the photos as they are).
    """
    cfg = config or PerceptualConfig()
    torch.manual_seed(cfg.seed)
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim == 2:
        x = x[:, None]
    n_img, n_views, dim = x.shape
    head = PerceptualHead(dim, cfg.hidden, cfg.dropout)
    loss_fn = _loss_fn(cfg)
    tr_i, tr_p = torch.as_tensor(train_index), torch.as_tensor(train_p, dtype=torch.float32)
    va_i = torch.as_tensor(val_index)
    gen = torch.Generator().manual_seed(cfg.seed)

    def step(b: np.ndarray) -> torch.Tensor:
        idx = tr_i[b]
        rows = idx * n_views + torch.randint(0, n_views, idx.shape, generator=gen)
        # few distinct images, many triplets: run the head once per distinct (image, view)
        uniq, inv = torch.unique(rows, return_inverse=True)
        emb = head(x.reshape(-1, dim)[uniq])
        return loss_fn(*triplet_distances(emb, inv), tr_p[b])

    @torch.no_grad()
    def validate() -> float:
        return _vote_2afc(*triplet_distances(head(x[:, 0]), va_i), val_p)

    return head, _early_stop_loop(cfg, head, list(head.parameters()), len(tr_i), step, validate, progress)


def fit_lora(encoder: Any, images: list[str], train_index: np.ndarray, train_p: np.ndarray,
             val_index: np.ndarray, val_p: np.ndarray, config: PerceptualConfig | None = None,
             progress: bool = False) -> FitResult:
    """LoRA (PEFT) adapters in `encoder.model` (an encoder exposing its torch module and
    `preprocess`, e.g. a timm ViT with target modules "qkv"); the model is changed in place and the
    adapters stay merged-ready (`encoder.model` becomes a PeftModel)."""
    from peft import LoraConfig, get_peft_model

    from fashionlens.catalog.images import open_image
    from fashionlens.encoders.torch_utils import pixel_batch
    from fashionlens.tasks.perceptual_data import photometric

    cfg = config or PerceptualConfig()
    if not isinstance(getattr(encoder, "model", None), nn.Module):
        raise InvalidInputError(f"encoder '{encoder.name}' exposes no torch `model`; LoRA needs one")
    torch.manual_seed(cfg.seed)
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), bias="none")
    model = get_peft_model(encoder.model, lcfg)
    encoder.model = model
    device = next(model.parameters()).device
    photos = [open_image(p) for p in images]
    loss_fn = _loss_fn(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    tr_i, tr_p = np.asarray(train_index), torch.as_tensor(train_p, dtype=torch.float32)
    va_i = torch.as_tensor(val_index)

    def embed(rows: np.ndarray, augment: bool) -> torch.Tensor:
        ims = [photometric(photos[r], rng, cfg.aug_strength) if augment else photos[r] for r in rows]
        return model(pixel_batch(ims, encoder.preprocess).to(device)).float().cpu()

    def step(b: np.ndarray) -> torch.Tensor:
        uniq, inv = np.unique(tr_i[b], return_inverse=True)
        emb = embed(uniq, cfg.aug_strength > 0)
        d_l, d_r = triplet_distances(emb, torch.as_tensor(inv.reshape(-1, 3)))
        return loss_fn(d_l, d_r, tr_p[b])

    @torch.no_grad()
    def validate() -> float:
        uniq, inv = np.unique(va_i.numpy(), return_inverse=True)
        emb = torch.cat([embed(uniq[s : s + 64], False) for s in range(0, len(uniq), 64)])
        return _vote_2afc(*triplet_distances(emb, torch.as_tensor(inv.reshape(-1, 3))), val_p)

    params = [p for p in model.parameters() if p.requires_grad]
    return _early_stop_loop(cfg, model, params, len(tr_i), step, validate, progress)
