"""`method="finetune"`: retrain the backbone's last blocks together with a cosine classifier on photos.

Frozen features cap what a head can learn (on Myntra articleType the MLP head stops near 0.84);
partial unfreezing lets the last blocks adapt to catalog photos. The tuned backbone comes out as an
`Encoder` (`TunedImageEncoder`, saved as a `run:` directory), the classifier as a `CosineHead`, so
prediction, flip TTA, embedding caches, evaluation and the web app work unchanged.

With a `checkpoint` folder every finished epoch is saved by the training engine (atomic safetensors +
JSON checkpoints, no pickle), and a rerun with the same data and settings continues after the last
finished epoch: a CPU run takes hours, a crash should cost one epoch at most.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.categorize.heads import CosineHead
from fashionlens.config import Config
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.classification import classification_metrics
from fashionlens.utils import read_json, write_json


@dataclass
class TuneConfig(Config):
    """Partial fine-tuning; `CategorizeConfig.tune` holds these as a dict."""

    unfreeze_blocks: int = 2  # of the backbone's block stack (timm `blocks`), counted from the end
    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3  # classifier; the unfrozen blocks get lr * backbone_lr_mult
    backbone_lr_mult: float = 0.25
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    scale: float = 16.0  # cosine-classifier temperature
    patience: int = 3  # epochs without a better validation macro F1
    augment: bool = True  # random resized crop, flip, light colour jitter (hue untouched); cached: flip only
    cached: bool = False  # train on cached activations of the frozen part (tune_cached.py): CPU minutes
    num_workers: int = -1  # photo-decoding processes; -1: none on CPU, up to 8 beside a GPU
    device: str = "auto"
    seed: int = 0


class _Photos:
    """Dataset of (pixels, label) for a torch DataLoader; augmentation per draw when training."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray, preprocess: Any, augment: bool):
        self.paths, self.labels, self.preprocess, self.augment = list(paths), labels, preprocess, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from fashionlens.catalog.images import open_image
        from fashionlens.categorize.data import augment_transform
        from fashionlens.encoders.torch_utils import pixel_batch

        im = open_image(self.paths[i])
        if self.augment:
            im = augment_transform("train", im.size)(im)
        return pixel_batch([im], self.preprocess)[0], int(self.labels[i])


class _CosineClassifier:
    """The tuned tower + a cosine classifier as one torch module (built lazily: torch stays unimported)."""

    @staticmethod
    def build(tower: Any, k: int, dim: int, scale: float) -> Any:
        import torch
        from torch import nn

        class Module(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.tower = tower
                self.weight = nn.Parameter(torch.randn(k, dim) * 0.01)
                self.bias = nn.Parameter(torch.zeros(k))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                feats = self.tower(x)  # unit norm; under autocast on GPUs
                with torch.autocast(x.device.type, enabled=False):  # logits in fp32
                    return scale * feats.float() @ nn.functional.normalize(self.weight, dim=1).T + self.bias

        return Module()


class ClassifierTask:
    """What both fine-tunes' engine tasks share: a (class-weighted) label-smoothed cross-entropy and
    two learning rates, the classifier's and the trainable backbone's (`backbone_lr_mult` of it)."""

    module: Any
    cfg: Any

    def _setup(self, weights: np.ndarray | None) -> None:
        import torch

        w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=self.cfg.label_smoothing)
        self.device = torch.device("cpu")

    def param_groups(self) -> list[dict[str, Any]]:
        backbone = [p for p in self.module.tower.parameters() if p.requires_grad]
        return [{"params": [self.module.weight, self.module.bias], "lr": self.cfg.lr},
                {"params": backbone, "lr": self.cfg.lr * self.cfg.backbone_lr_mult}]


class _TuneTask(ClassifierTask):
    """Engine task: augmented photo batches, label-smoothed cross-entropy, validation macro F1."""

    def __init__(self, module: Any, tuned: Any, loader: Any, val: Catalog, y_val: np.ndarray,
                 classes: Sequence[str], weights: np.ndarray | None, cfg: TuneConfig):
        self.module, self.tuned, self.loader, self.cfg = module, tuned, loader, cfg
        self.val, self.y_val, self.classes = val, y_val, list(classes)
        self._setup(weights)

    def n_batches(self) -> int:
        return max(1, len(self.loader))

    def batches(self, epoch: int) -> Any:
        # order and augmentation depend on (seed, epoch) alone: a resumed run repeats an unbroken one
        if getattr(self.loader, "generator", None) is not None:
            self.loader.generator.manual_seed(self.cfg.seed + epoch)
        return self.loader

    def loss(self, model: Any, batch: Any) -> Any:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        return self.loss_fn.to(self.device)(model(x), y)

    def head(self) -> CosineHead:
        from torch import nn

        return CosineHead(nn.functional.normalize(self.module.weight, dim=1).detach().cpu().numpy(),
                          self.module.bias.detach().cpu().numpy(), self.cfg.scale)

    def validate(self) -> dict[str, float] | None:
        if not len(self.val):
            return None
        proba = self.head().predict_proba(self.tuned.encode_images(self.val.images))
        m = classification_metrics(self.y_val, proba.argmax(1), self.classes, proba)
        return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_top5_accuracy": m["top5_accuracy"]}


def finetune(encoder: Encoder, train: Catalog, y_train: np.ndarray, val: Catalog, y_val: np.ndarray,
             classes: Sequence[str], weights: np.ndarray | None, config: TuneConfig,
             log: Callable[[dict[str, Any]], None] | None = None, progress: bool = False,
             checkpoint: str | Path | None = None) -> tuple[Any, CosineHead, list[dict[str, Any]]]:
    """Train the last blocks + a cosine classifier; early stopping on validation macro F1.

    Returns (tuned encoder, head, per-epoch history). The best epoch's weights are kept. With
    `checkpoint`, a rerun with the same data and settings continues after the last finished epoch."""
    import torch

    from fashionlens.encoders.tuned import TunedImageEncoder
    from fashionlens.train.engine import FitConfig, fit
    from fashionlens.train.runs import RunDir

    cfg = config
    torch.manual_seed(cfg.seed)
    tuned = TunedImageEncoder(encoder, cfg.unfreeze_blocks)
    module = _CosineClassifier.build(tuned.tower, len(classes), tuned.dim, cfg.scale)
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    workers = cfg.num_workers if cfg.num_workers >= 0 else (min(8, (os.cpu_count() or 2) - 1) if cuda else 0)
    loader = torch.utils.data.DataLoader(
        _Photos(train.images, y_train, tuned.preprocess, cfg.augment), batch_size=cfg.batch_size, shuffle=True,
        num_workers=workers, drop_last=len(train) > cfg.batch_size, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed))
    task = _TuneTask(module, tuned, loader, val, y_val, classes, weights, cfg)
    run = None
    if checkpoint is not None:
        run = RunDir(checkpoint)
        _check_identity(run, {"config": asdict(cfg), "classes": [str(c) for c in classes],
                              "train": [str(i) for i in train.ids], "val": [str(i) for i in val.ids]})
    fit_cfg = FitConfig(epochs=cfg.epochs, weight_decay=cfg.weight_decay, lr=cfg.lr, schedule="onecycle", warmup=0.15,
                        monitor="val_macro_f1" if len(val) else "train_loss",
                        monitor_mode="max" if len(val) else "min", min_delta=1e-4, patience=cfg.patience,
                        seed=cfg.seed, device=cfg.device, precision="bf16" if cuda else "no",
                        description="fine-tuning", progress_batches=True)
    resumed = run is not None and run.has_checkpoint("last")
    if resumed and log is not None:  # the caller's log starts empty: replay the finished epochs first
        for row in run.load_checkpoint("last")[1].get("history", []):
            log({**row, "epoch": row["epoch"] + 1})
    res = fit(task, fit_cfg, run, resume=resumed, progress=progress,
              log=None if log is None else lambda row: log({**row, "epoch": row["epoch"] + 1}))
    history = [{**r, "epoch": r["epoch"] + 1} for r in res.history]
    tower = module.tower.eval()  # stays on the device it trained on: predictions run there too
    tuned.tower = tower
    return tuned, task.head(), history


def _check_identity(run: Any, identity: dict[str, Any]) -> None:
    """A checkpoint folder belongs to one fine-tuning run (same data and settings)."""
    path = run.root / "identity.json"
    if path.is_file():
        if read_json(path) != identity:
            raise InvalidInputError(f"{run.root} holds a checkpoint of a different fine-tuning run (other data or "
                                    "settings): delete it or write this run elsewhere")
    else:
        write_json(path, identity)
