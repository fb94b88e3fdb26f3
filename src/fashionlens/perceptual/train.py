"""Perceptual alignment training (DreamSim-style): an MLP head on frozen features, or LoRA on a
backbone, fitted to human "which looks more similar" triplets; early stopping on validation 2AFC.

Distances are cosine distances d = 1 - cos(ref, candidate); `s = d_right - d_left` > 0 means the
model calls the left candidate closer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashionlens.config import Config
from fashionlens.errors import InvalidInputError
from fashionlens.train.engine import FitConfig, FitResult, fit


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
class PerceptualConfig(Config):
    """One training run; saved back into the run directory as config.yaml (`Config.from_yaml` reads it)."""

    triplets: str = ""  # NIGHTS-layout or plain CSV
    out: str = "runs/perceptual"
    encoders: list[str] = field(default_factory=lambda: ["efficientnet-lite0"])  # >1: ensemble
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to every create()
    mode: str = "mlp"  # "mlp" (head on frozen features) or "lora" (adapters in the backbone)
    loss: str = "hinge"  # "hinge" or "logistic"
    margin: float = 0.05  # DreamSim
    temperature: float = 0.05
    head: str = "mlp"  # "mlp" (linear skip + residual MLP), "lowrank" (projection to `rank`), "diagonal"
    hidden: int = 512
    # 0.3: chosen on reference splits 0-2 against low-rank, diagonal and averaged heads and multi-layer features;
    # over ten splits the relit-proxy gap is -0.003 vs 0.1, as rendered level (docs/bench/perceptual.md)
    dropout: float = 0.3
    rank: int = 256  # output width of the "lowrank" head
    n_heads: int = 1  # >1: that many heads fitted with seeds seed, seed + 1, ..., their cosines averaged
    lora_r: int = 16  # DreamSim
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list[str] = field(default_factory=lambda: ["qkv"])
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    # cached views per image (view 0 = as is, the others jitter of `aug_family`); lora augments on the fly.
    # 1 + 3 colour_jitter views at s = 2: relit-proxy gap 0.011 vs 0.020 without, over five reference
    # splits (docs/bench/perceptual.md); photometric jitter instead widened it
    n_views: int = 4
    aug_strength: float = 2.0  # jitter strength of views 1.. (n_views > 1) and of LoRA's photos
    # family of views 1..: "colour_jitter" or "photometric" (never "relight": that is the test proxy);
    # LoRA always jitters photometrically
    aug_family: str = "colour_jitter"
    eval_lighting: float = 2.0  # strength of the synthetic relighting proxy (lighting.relight) at test (0 = skip)
    # what the bases see, side by side: the photo and lighting-invariant versions (lighting.INVARIANT_INPUTS);
    # photo + grey world, pooled over all 8 flips / turns, cut the relighting gap 5x (docs/bench/perceptual.md)
    inputs: list[str] = field(default_factory=lambda: ["rgb", "grey_world"])
    pool_views: int = 8  # base features averaged over this many flips / quarter turns (1-8)
    # evaluation split, only when asked: "none" (train on every triplet outside validation),
    # "reference" (hold out test_size of the reference images) or "column" (the CSV's split column)
    split: str = "none"
    test_size: float = 0.2
    val_size: float = 0.15
    seed: int = 0
    cache_dir: str | None = None


def _loss_fn(cfg: PerceptualConfig) -> Callable[..., torch.Tensor]:
    if cfg.loss == "hinge":
        return lambda a, b, p: hinge_triplet_loss(a, b, p, cfg.margin)
    if cfg.loss == "logistic":
        return lambda a, b, p: logistic_triplet_loss(a, b, p, cfg.temperature)
    raise InvalidInputError(f"unknown loss '{cfg.loss}' (use 'hinge' or 'logistic')")


def _vote_2afc(d_l: torch.Tensor, d_r: torch.Tensor, p: np.ndarray) -> float:
    from fashionlens.perceptual.evaluate import two_afc_scores

    return float(two_afc_scores(d_l.cpu().numpy(), d_r.cpu().numpy(), p).mean())


def _fit_config(cfg: PerceptualConfig) -> FitConfig:
    """The engine's settings for both modes: AdamW at a constant lr, the untuned model's validation
    2AFC as the score to beat, early stopping on it."""
    return FitConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, monitor="val_2afc",
                     patience=cfg.patience, validate_first=True, seed=cfg.seed, description="perceptual training")


class _TripletTask:
    """Shuffled batches of training triplets; subclasses embed the images a batch needs."""

    device = torch.device("cpu")

    def __init__(self, module: nn.Module, cfg: PerceptualConfig, train_index: np.ndarray, train_p: np.ndarray,
                 val_index: np.ndarray, val_p: np.ndarray):
        self.module, self.cfg, self.loss_fn = module, cfg, _loss_fn(cfg)
        self.tr_i, self.tr_p = np.asarray(train_index), torch.as_tensor(train_p, dtype=torch.float32)
        self.va_i, self.va_p = np.asarray(val_index), val_p

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.module.parameters())}]

    def n_batches(self) -> int:
        return -(-len(self.tr_i) // self.cfg.batch_size)

    def batches(self, epoch: int) -> Any:
        order = np.random.default_rng(self.cfg.seed + epoch).permutation(len(self.tr_i))
        return (order[s : s + self.cfg.batch_size] for s in range(0, len(order), self.cfg.batch_size))

    def train_mode(self) -> None:
        for m in self.module.modules():  # BatchNorm keeps its pretrained statistics (LoRA on CNNs)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def loss(self, model: nn.Module, b: np.ndarray) -> torch.Tensor:
        # few distinct images, many triplets: embed each distinct image of the batch once
        uniq, inv = np.unique(self.tr_i[b], return_inverse=True)
        emb = self.embed(model, uniq, train=True)
        d_l, d_r = triplet_distances(emb, torch.as_tensor(inv.reshape(-1, 3)))
        return self.loss_fn(d_l, d_r, self.tr_p[b].to(d_l.device))

    def validate(self) -> dict[str, float]:
        uniq, inv = np.unique(self.va_i, return_inverse=True)
        emb = torch.cat([self.embed(self.module, uniq[s : s + 256], train=False) for s in range(0, len(uniq), 256)])
        return {"val_2afc": _vote_2afc(*triplet_distances(emb, torch.as_tensor(inv.reshape(-1, 3))), self.va_p)}

    def embed(self, model: nn.Module, images: np.ndarray, train: bool) -> torch.Tensor:
        raise NotImplementedError


class _HeadTask(_TripletTask):
    """A head (`perceptual_head`) on frozen features (n_images, n_views, dim): each training draw takes a
    random view of each image (photometric augmentation); validation uses view 0, the photos as
    they are."""

    def __init__(self, features: torch.Tensor, *args: Any):
        super().__init__(*args)
        self.x = features

    def embed(self, model: nn.Module, images: np.ndarray, train: bool) -> torch.Tensor:
        idx = torch.as_tensor(images)
        views = torch.randint(0, self.x.shape[1], idx.shape) if train else torch.zeros_like(idx)
        return model(self.x[idx, views].to(self.device))


class _LoraTask(_TripletTask):
    """LoRA adapters in a backbone; photos re-augmented at every draw."""

    def __init__(self, encoder: Any, photos: list[Any], *args: Any):
        super().__init__(*args)
        self.encoder, self.photos = encoder, photos
        self.rng = np.random.default_rng(self.cfg.seed + 1)

    def embed(self, model: nn.Module, images: np.ndarray, train: bool) -> torch.Tensor:
        from fashionlens.encoders.torch_utils import pixel_batch
        from fashionlens.perceptual.data import photometric

        augment = train and self.cfg.aug_strength > 0
        ims = [photometric(self.photos[r], self.rng, self.cfg.aug_strength) if augment else self.photos[r]
               for r in images]
        return model(pixel_batch(ims, self.encoder.preprocess).to(self.device)).float()


def fit_head(features: np.ndarray, train_index: np.ndarray, train_p: np.ndarray,
             val_index: np.ndarray, val_p: np.ndarray, config: PerceptualConfig | None = None,
             progress: bool = False) -> tuple[nn.Module, FitResult]:
    """Fit the config's head (`perceptual_head`) on frozen features (n_images, n_views, dim) or
    (n_images, dim). With `n_heads` > 1 each head is fitted on its own (seeds seed + k: init, batch
    order, view draws, dropout) and a `HeadAverage` of them is returned; its FitResult keeps the
    first head's history, sums the seconds, scores the average on validation (`best_score`) and
    lists each head's best score and epoch in `extra`."""
    import dataclasses

    from fashionlens.encoders.nn import HeadAverage, LowRankHead, perceptual_head

    cfg = config or PerceptualConfig()
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim == 2:
        x = x[:, None]
    heads, results = [], []
    for k in range(cfg.n_heads):
        cfg_k = dataclasses.replace(cfg, seed=cfg.seed + k)
        torch.manual_seed(cfg_k.seed)
        head = perceptual_head(x.shape[2], cfg.head, cfg.hidden, cfg.dropout, cfg.rank)
        if isinstance(head, LowRankHead):  # start near the untuned cosine: training images only
            head.init_from(x[np.unique(np.asarray(train_index))].reshape(-1, x.shape[2]))
        task = _HeadTask(x, head, cfg_k, train_index, train_p, val_index, val_p)
        results.append(fit(task, _fit_config(cfg_k), progress=progress))
        heads.append(head.cpu().eval())
    if len(heads) == 1:
        return heads[0], results[0]
    avg = HeadAverage(heads).eval()
    with torch.no_grad():  # the average's own validation score, not the mean of the heads'
        val = _HeadTask(x, avg, cfg, train_index, train_p, val_index, val_p).validate()["val_2afc"]
    return avg, dataclasses.replace(results[0], seconds=sum(r.seconds for r in results), best_score=val,
                                    extra={"head_val_2afc": [r.best_score for r in results],
                                           "head_best_epoch": [r.best_epoch for r in results]})


def fit_lora(encoder: Any, images: list[str], train_index: np.ndarray, train_p: np.ndarray,
             val_index: np.ndarray, val_p: np.ndarray, config: PerceptualConfig | None = None,
             progress: bool = False) -> FitResult:
    """LoRA (PEFT) adapters in `encoder.model` (an encoder exposing its torch module and
    `preprocess`, e.g. a timm ViT with target modules "qkv"); the model is changed in place and the
    adapters stay merged-ready (`encoder.model` becomes a PeftModel)."""
    from peft import LoraConfig, get_peft_model

    from fashionlens.catalog.images import open_image

    cfg = config or PerceptualConfig()
    if not isinstance(getattr(encoder, "model", None), nn.Module):
        raise InvalidInputError(f"encoder '{encoder.name}' exposes no torch `model`; LoRA needs one")
    torch.manual_seed(cfg.seed)
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), bias="none")
    encoder.model = get_peft_model(encoder.model, lcfg)
    photos = [open_image(p) for p in images]
    task = _LoraTask(encoder, photos, encoder.model, cfg, train_index, train_p, val_index, val_p)
    return fit(task, _fit_config(cfg), progress=progress)
