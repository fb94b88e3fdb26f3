"""Fine-tune any (image encoder, text encoder) pair for text↔image retrieval.

One loop for every strategy (frozen towers + heads, partial unfreezing, LoRA), run through
`accelerate` (mixed precision, several GPUs, gradient accumulation; plain fp32 on CPU), with
early stopping on validation Recall@10, resumable safetensors checkpoints and a run directory.
The result is a registry encoder: `create("run:<out>")`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionlens.catalog.core import Catalog
from fashionlens.embed import DEFAULT_CACHE
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError, TrainingDivergedError
from fashionlens.evaluation.metrics import target_ranks
from fashionlens.train import losses
from fashionlens.train.runs import RunDir
from fashionlens.train.sampler import StratifiedBatchSampler
from fashionlens.train.strategies import DualEncoder, build_tower, embed_rows
from fashionlens.utils import text_hash

LOSSES = ("info_nce", "info_nce_supcon", "triplet")


class NonFiniteLossError(TrainingDivergedError):
    """Training produced a NaN/inf loss; the run stopped and its last good checkpoint is kept."""


@dataclass
class RetrievalConfig:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetrievalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInputError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RetrievalConfig:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise InvalidInputError(f"{p}: expected a mapping of config keys")
        return cls.from_dict(data)


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


def build_model(cfg: RetrievalConfig, image_encoder: Encoder, text_encoder: Encoder) -> DualEncoder:
    kw = dict(unfreeze_blocks=cfg.unfreeze_blocks, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
              lora_targets=cfg.lora_targets)
    it = build_tower(image_encoder, "image", cfg.image_strategy, image_size=cfg.image_size, **kw)
    tt = build_tower(text_encoder, "text", cfg.text_strategy, **kw)
    return DualEncoder(it, tt, cfg.dim, cfg.hidden, cfg.head, cfg.dropout)


def _loss(cfg: RetrievalConfig, model: nn.Module, zi: torch.Tensor, zt: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if cfg.loss == "info_nce":
        return losses.info_nce(zi, zt, model.log_scale)
    if cfg.loss == "info_nce_supcon":
        return losses.info_nce_supcon(zi, zt, y, model.log_scale, cfg.label_weight, cfg.temperature)
    both = losses.batch_hard_triplet(torch.cat([zi, zt]), torch.cat([y, y]), cfg.margin)
    return losses.cross_modal_batch_hard(zi, zt, cfg.margin) + cfg.label_weight * both


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_retrieval(config: RetrievalConfig, out: str | Path, catalog: Catalog | None = None,
                    image_encoder: Encoder | None = None, text_encoder: Encoder | None = None,
                    resume: bool = False, progress: bool = True) -> TrainResult:
    """Train, keep the best epoch (validation Recall@10), save it as a `run:<out>` encoder."""
    from accelerate import Accelerator

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
    _seed(cfg.seed)
    image_encoder = image_encoder or create(cfg.image_encoder)
    text_encoder = text_encoder or create(cfg.text_encoder)
    model = build_model(cfg, image_encoder, text_encoder)
    if cfg.init_from:
        _init_from(model, Path(cfg.init_from))
    model.image_tower.bind(catalog, cfg.cache_dir, progress)
    model.text_tower.bind(catalog, cfg.cache_dir, progress)

    val_mask = val_rows_by_id(list(catalog.ids), cfg.val_fraction)
    if val_mask.sum() < 5 or (~val_mask).sum() < 10:
        raise InvalidInputError(f"catalog too small to train: {len(catalog)} items ({int(val_mask.sum())} for validation)")
    train_rows, val_rows = np.flatnonzero(~val_mask), np.flatnonzero(val_mask)
    col = cfg.label_column
    raw = catalog.column(col) if col and col in catalog.df.columns else np.arange(len(catalog))
    labels = torch.as_tensor(np.unique(np.asarray(raw).astype(str), return_inverse=True)[1])

    sampler = StratifiedBatchSampler(labels[train_rows].numpy(), cfg.batch_size, cfg.per_class, cfg.seed)
    loader = torch.utils.data.DataLoader(
        train_rows.tolist(), batch_sampler=sampler,
        collate_fn=lambda rows: (model.image_tower.inputs(rows), model.text_tower.inputs(rows), labels[rows]),
    )
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    acc = Accelerator(mixed_precision=cfg.precision, gradient_accumulation_steps=cfg.accumulate, cpu=cpu)
    heads = [p for n, p in model.named_parameters() if p.requires_grad and "_tower." not in n]
    towers = [p for n, p in model.named_parameters() if p.requires_grad and "_tower." in n]
    opt = torch.optim.AdamW([{"params": heads, "lr": cfg.lr}, {"params": towers, "lr": cfg.tower_lr}],
                            weight_decay=cfg.weight_decay)
    total = cfg.epochs * max(1, math.ceil(len(sampler) / cfg.accumulate))
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))

    start, step, best, best_epoch, bad = 0, 0, -1.0, -1, 0
    if resume and run.has_checkpoint("last"):
        weights, state, opt_state = run.load_checkpoint("last")
        model.load_trainable_state(weights)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        sched.load_state_dict(state["scheduler"])
        start, step = state["epoch"] + 1, state["step"]
        best, best_epoch, bad = state["best"], state["best_epoch"], state["bad_epochs"]
        run.log({"event": "resume", "epoch": start, "step": step})
    else:
        run.write_config(cfg.to_dict())
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    core: DualEncoder = acc.unwrap_model(model)
    params = [p for p in core.parameters() if p.requires_grad]
    t0 = time.time()
    stopped = "max epochs"
    for epoch in range(start, cfg.epochs):
        _seed(cfg.seed + epoch)  # a resumed epoch draws the same dropout/shuffles as an unbroken run
        loader.set_epoch(epoch)  # accelerate's loader would otherwise restart its epoch count on resume
        model.train()
        batch_losses, te = [], time.time()
        batches = loader
        if progress:
            from fashionlens.progress import track

            batches = track(loader, f"epoch {epoch + 1}/{cfg.epochs}")
        for xi, xt, y in batches:
            with acc.accumulate(model):
                with acc.autocast():
                    zi, zt = model(xi, xt)
                loss = _loss(cfg, core, zi.float(), zt.float(), y)  # logits in fp32
                if not torch.isfinite(loss):
                    run.log({"event": "non_finite_loss", "epoch": epoch, "step": step, "loss": str(loss.item())})
                    _finish(run, core, cfg, best_epoch)
                    kept = (f"the last good checkpoint is kept in {run.ckpt / 'last'}" if run.has_checkpoint("last")
                            else "no epoch had finished, so there is no checkpoint")
                    raise NonFiniteLossError(
                        f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}: training stopped; {kept}. "
                        f"Resume with a lower lr (now {cfg.lr}, tower_lr {cfg.tower_lr}) or precision 'no'."
                    )
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, cfg.clip_grad)
                    step += 1
                opt.step()
                sched.step()
                opt.zero_grad()
            batch_losses.append(loss.item())
        zi_v, zt_v = embed_rows(core, val_rows.tolist(), device=acc.device)
        r10 = float(np.mean(target_ranks(zt_v, zi_v, np.arange(len(val_rows))) < 10))
        improved = r10 > best
        best, best_epoch, bad = (r10, epoch, 0) if improved else (best, best_epoch, bad + 1)
        rec = {"event": "epoch", "epoch": epoch, "step": step, "train_loss": float(np.mean(batch_losses)),
               "val_recall@10": r10, "lr": sched.get_last_lr()[0], "seconds": round(time.time() - te, 2)}
        run.log(rec)
        weights = core.trainable_state()
        if acc.is_main_process:  # several GPUs: one writer
            if improved:
                run.save_checkpoint("best", weights, {"epoch": epoch, "val_recall@10": r10})
            run.save_checkpoint("last", weights, {"epoch": epoch, "step": step, "best": best,
                                                  "best_epoch": best_epoch, "bad_epochs": bad,
                                                  "scheduler": sched.state_dict()}, opt)
        acc.wait_for_everyone()
        if bad >= cfg.patience:
            stopped = f"early stop: no Recall@10 gain for {cfg.patience} epochs"
            break
    run.log({"event": "done", "reason": stopped, "best_epoch": best_epoch, "best_val_recall@10": best,
             "seconds": round(time.time() - t0, 2)})
    if acc.is_main_process:
        _finish(run, core, cfg, best_epoch)
    acc.wait_for_everyone()
    if not acc.is_main_process:
        core.load_trainable_state(run.load_checkpoint("best")[0])
    enc = FinetunedEncoder(core.eval(), cfg.to_dict(), name=f"run:{run.root}")
    return TrainResult(enc, run.root, [r for r in run.records() if r.get("event") == "epoch"],
                       best_epoch, best, time.time() - t0)


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
