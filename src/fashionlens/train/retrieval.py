"""Fine-tune any (image encoder, text encoder) pair for text↔image retrieval.

One loop for every strategy (frozen towers + heads, partial unfreezing, LoRA), run through
`accelerate` (mixed precision, several GPUs, gradient accumulation; plain fp32 on CPU), with
early stopping on validation Recall@10, resumable safetensors checkpoints and a run directory.
The result is a registry encoder: `create("run:<out>")`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionlens.catalog.core import Catalog
from fashionlens.config import Config
from fashionlens.embed import DEFAULT_CACHE
from fashionlens.encoders.base import Encoder
from fashionlens.encoders.nn import DualEncoder, FeatureTower, build_dual_encoder, embed_rows
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.metrics import target_ranks
from fashionlens.train import losses
from fashionlens.train.engine import FitConfig, NonFiniteLossError, fit, seed_everything
from fashionlens.train.runs import RunDir
from fashionlens.train.sampler import StratifiedBatchSampler
from fashionlens.utils import text_hash

LOSSES = ("info_nce", "info_nce_supcon", "triplet")


@dataclass
class RetrievalConfig(Config):
    """Everything a retrieval fine-tuning run needs; saved as the run's config.yaml."""

    catalog: str | None = None  # catalog path (CLI/YAML); Python callers may pass a Catalog instead
    limit: int | None = None
    image_encoder: str = "efficientnet-lite0"
    text_encoder: str = "minilm-l6"
    image_strategy: str = "frozen"  # frozen | partial | lora
    text_strategy: str = "frozen"
    unfreeze_blocks: int = 2
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] | None = None  # default: the attention projections found in the tower
    image_size: int | None = None  # None = the encoder's own preprocessing size
    loss: str = "info_nce_supcon"  # info_nce | info_nce_supcon | triplet (two-tower batch-hard)
    label_column: str | None = "articleType"  # SupCon/triplet labels and the sampler's strata
    label_weight: float = 0.5
    temperature: float = 0.1
    margin: float = 0.2
    dim: int = 256
    hidden: int = 1024
    head: str = "mlp"
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 128
    per_class: int = 4
    accumulate: int = 1
    lr: float = 1e-3  # heads and temperature
    tower_lr: float = 5e-5  # unfrozen blocks / adapters
    weight_decay: float = 1e-4
    warmup: float = 0.1
    clip_grad: float = 1.0
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0
    precision: str = "no"  # accelerate mixed precision: no | fp16 | bf16 (GPUs)
    device: str = "auto"
    cache_dir: str | None = str(DEFAULT_CACHE)
    init_from: str | None = None  # a run dir: start heads/temperature (and any matching weights) from it

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InvalidInputError(f"unknown loss '{self.loss}' (use one of {', '.join(LOSSES)})")
        if self.accumulate < 1 or self.epochs < 1 or self.batch_size < 2:
            raise InvalidInputError("accumulate and epochs must be >= 1 and batch_size >= 2")


@dataclass
class TrainResult:
    encoder: Encoder
    out: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_recall10: float
    seconds: float


def val_rows_by_id(ids: list[str], fraction: float) -> np.ndarray:
    """Boolean mask of validation items, fixed by item id (not by order or seed)."""
    h = np.array([int(text_hash(str(i)), 16) % 10_000 for i in ids])
    return h < int(round(fraction * 10_000))


def _loss(cfg: RetrievalConfig, model: nn.Module, zi: torch.Tensor, zt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if cfg.loss == "info_nce":
        return losses.info_nce(zi, zt, model.log_scale)
    if cfg.loss == "info_nce_supcon":
        return losses.info_nce_supcon(zi, zt, y, model.log_scale, cfg.label_weight, cfg.temperature)
    both = losses.batch_hard_triplet(torch.cat([zi, zt]), torch.cat([y, y]), cfg.margin)
    return losses.cross_modal_batch_hard(zi, zt, cfg.margin) + cfg.label_weight * both


class _RetrievalTask:
    """Paired (photo, name) batches from the stratified sampler; validation text→image Recall@10."""

    device = torch.device("cpu")

    def __init__(self, cfg: RetrievalConfig, model: DualEncoder, labels: torch.Tensor, train_rows: np.ndarray,
                 val_rows: np.ndarray):
        self.cfg, self.module, self.val_rows = cfg, model, val_rows.tolist()
        self.sampler = StratifiedBatchSampler(labels[train_rows].numpy(), cfg.batch_size, cfg.per_class, cfg.seed)
        self.loader = torch.utils.data.DataLoader(
            train_rows.tolist(), batch_sampler=self.sampler,
            collate_fn=lambda rows: (model.image_tower.inputs(rows), model.text_tower.inputs(rows), labels[rows]))

    def param_groups(self) -> list[dict[str, Any]]:
        named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        return [{"params": [p for n, p in named if "_tower." not in n]},  # heads and temperature
                {"params": [p for n, p in named if "_tower." in n], "lr": self.cfg.tower_lr}]

    def n_batches(self) -> int:
        return len(self.sampler)

    def batches(self, epoch: int) -> Any:
        return self.loader

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        xi, xt, y = batch
        zi, zt = model(xi, xt)
        with torch.autocast(self.device.type, enabled=False):  # logits in fp32
            return _loss(self.cfg, self.module, zi.float(), zt.float(), y)

    def validate(self) -> dict[str, float]:
        zi, zt = embed_rows(self.module, self.val_rows, device=self.device)
        return {"val_recall@10": float(np.mean(target_ranks(zt, zi, np.arange(len(zi))) < 10))}


def train_retrieval(config: RetrievalConfig, out: str | Path, catalog: Catalog | None = None,
                    image_encoder: Encoder | None = None, text_encoder: Encoder | None = None,
                    resume: bool = False, progress: bool = True) -> TrainResult:
    """Train, keep the best epoch (validation Recall@10), save it as a `run:<out>` encoder."""
    from accelerate import PartialState

    from fashionlens.encoders.finetuned import FinetunedEncoder
    from fashionlens.encoders.registry import create

    cfg = config
    run = RunDir(out)
    if run.has_checkpoint("last") and not resume:
        raise FileExistsError(f"{run.root} already holds a run; resume it (--resume) or choose another directory")
    if catalog is None:
        if not cfg.catalog:
            raise InvalidInputError("no catalog: set `catalog:` in the config or pass one")
        from fashionlens.catalog import load_catalog

        catalog = load_catalog(cfg.catalog, limit=cfg.limit)
    seed_everything(cfg.seed)
    image_encoder = image_encoder or create(cfg.image_encoder)
    text_encoder = text_encoder or create(cfg.text_encoder)
    model = build_dual_encoder(cfg.to_dict(), image_encoder, text_encoder)
    if cfg.init_from:
        _init_from(model, Path(cfg.init_from))
    bind_towers(model, catalog, cfg.cache_dir, progress)

    val_mask = val_rows_by_id(list(catalog.ids), cfg.val_fraction)
    if val_mask.sum() < 5 or (~val_mask).sum() < 10:
        raise InvalidInputError(f"catalog too small to train: {len(catalog)} items ({int(val_mask.sum())} for validation)")
    col = cfg.label_column
    raw = catalog.column(col) if col and col in catalog.df.columns else np.arange(len(catalog))
    labels = torch.as_tensor(np.unique(np.asarray(raw).astype(str), return_inverse=True)[1])
    task = _RetrievalTask(cfg, model, labels, np.flatnonzero(~val_mask), np.flatnonzero(val_mask))
    fit_cfg = FitConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="warmup_cosine",
                        warmup=cfg.warmup, clip_grad=cfg.clip_grad, monitor="val_recall@10", patience=cfg.patience,
                        seed=cfg.seed, precision=cfg.precision, device=cfg.device, accumulate=cfg.accumulate,
                        description="retrieval fine-tuning", progress_batches=True)
    if not (resume and run.has_checkpoint("last")):
        run.write_config(cfg.to_dict())
    main = PartialState().is_main_process
    try:
        res = fit(task, fit_cfg, run, resume=resume, progress=progress,
                  log=lambda row: run.log({"event": "epoch", **row}) if main else None)
    except NonFiniteLossError:
        if main:
            _finish(run, model, cfg, -1)  # export the best epoch that finished, if any
        raise
    run.log({"event": "done", "reason": res.stopped, "best_epoch": res.best_epoch,
             "best_val_recall@10": res.best_score, "seconds": round(res.seconds, 2)})
    if main:
        _finish(run, model, cfg, res.best_epoch)
    enc = FinetunedEncoder(model.eval(), cfg.to_dict(), name=f"run:{run.root}")
    return TrainResult(enc, run.root, [r for r in run.records() if r.get("event") == "epoch"],
                       res.best_epoch, res.best_score, res.seconds)


def _init_from(model: DualEncoder, run: Path) -> None:
    """Warm start: copy the trained weights of another run (e.g. frozen-tower heads) that fit."""
    from safetensors.torch import load_file

    path = run / "weights.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} not found (train that run first)")
    own = dict(model.named_parameters())
    src = {k: v for k, v in load_file(str(path)).items() if k in own and own[k].shape == v.shape}
    if not any(k.endswith("_head.skip.weight") for k in src):
        raise InvalidInputError(f"init_from: {run} has no projection heads of the same shapes as this model")
    with torch.no_grad():
        for k, v in src.items():
            own[k].copy_(v)


def _finish(run: RunDir, model: DualEncoder, cfg: RetrievalConfig, best_epoch: int) -> None:
    """Load the best epoch's weights and export them as the run's encoder; draw the curves."""
    from fashionlens.encoders.finetuned import save_finetuned

    if run.has_checkpoint("best"):
        model.load_trainable_state(run.load_checkpoint("best")[0])
        save_finetuned(run.root, model, cfg.to_dict(), best_epoch)
    run.plot()


def train_from_yaml(path: str | Path, out: str | Path | None = None, resume: bool = False,
                    progress: bool = True) -> TrainResult:
    """`fashionlens train retrieval CONFIG.yaml` from Python; `out` defaults to runs/<config name>."""
    cfg = RetrievalConfig.from_yaml(path)
    return train_retrieval(cfg, out or Path("runs") / Path(path).stem, resume=resume, progress=progress)


def bind_towers(model: DualEncoder, catalog: Catalog, cache_dir: Any, progress: bool) -> None:
    """Attach the training catalog; frozen towers get its (cached) embeddings."""
    from fashionlens.embed import embed_images, embed_texts

    for tower, embed in ((model.image_tower, embed_images), (model.text_tower, embed_texts)):
        feats = embed(tower.encoder, catalog, cache_dir, progress=progress) if isinstance(tower, FeatureTower) else None
        tower.bind(catalog, feats)
