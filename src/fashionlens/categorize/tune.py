"""`method="finetune"`: retrain the backbone's last blocks together with a cosine classifier on photos.

Frozen features cap what a head can learn (on Myntra articleType the MLP head stops near 0.84);
partial unfreezing lets the last blocks adapt to catalog photos. The tuned backbone comes out as an
`Encoder` (`TunedImageEncoder`, saved as a `run:` directory), the classifier as a `CosineHead`, so
prediction, flip TTA, embedding caches, evaluation and the web app work unchanged.

With a `checkpoint` folder every finished epoch is saved (safetensors + the optimiser state, written
before the small JSON that points at them), and a rerun with the same data and settings continues
after the last finished epoch: a CPU run takes hours, a crash should cost one epoch at most.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.categorize.heads import CosineHead, one_cycle
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError, TrainingDivergedError
from fashionlens.evaluation.classification import classification_metrics
from fashionlens.utils import atomic_write, read_json, write_json


@dataclass
class TuneConfig:
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
    augment: bool = True  # random resized crop, flip, light colour jitter (hue untouched)
    num_workers: int = -1  # photo-decoding processes; -1: none on CPU, up to 8 beside a GPU
    device: str = "auto"
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d or {}) - known
        if unknown:
            raise InvalidInputError(f"unknown fine-tune option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**(d or {}))


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


class _Checkpoint:
    """Per-epoch training state in a folder: epoch-numbered tensor files, then `state.json` naming them."""

    def __init__(self, folder: str | Path | None, identity: dict[str, Any]):
        self.folder, self.identity = (Path(folder) if folder else None), identity

    def load(self) -> dict[str, Any] | None:
        """The last finished epoch's state, or None to start fresh (no folder, nothing saved yet)."""
        import torch
        from safetensors.torch import load_file

        if self.folder is None or not (self.folder / "state.json").is_file():
            return None
        meta = read_json(self.folder / "state.json")
        if meta.get("identity") != self.identity:
            raise InvalidInputError(f"{self.folder} holds a checkpoint of a different fine-tuning run (other data or "
                             "settings): delete it or write this run elsewhere")
        e = meta["epoch"]
        meta["tensors"] = load_file(str(self.folder / f"epoch-{e}.safetensors"))
        meta["optim"] = torch.load(self.folder / f"optim-{e}.pt", map_location="cpu", weights_only=True)
        return meta

    def save(self, epoch: int, tensors: dict[str, Any], optim: dict[str, Any], state: dict[str, Any]) -> None:
        import torch
        from safetensors.torch import save_file

        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.folder / f"epoch-{epoch}.safetensors") as tmp:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        with atomic_write(self.folder / f"optim-{epoch}.pt") as tmp:
            torch.save(optim, tmp)
        write_json(self.folder / "state.json", {"identity": self.identity, "epoch": epoch, **state})
        for old in [*self.folder.glob("epoch-*.safetensors"), *self.folder.glob("optim-*.pt")]:
            if old.stem.rsplit("-", 1)[-1] != str(epoch):
                old.unlink(missing_ok=True)


def finetune(encoder: Encoder, train: Catalog, y_train: np.ndarray, val: Catalog, y_val: np.ndarray,
             classes: Sequence[str], weights: np.ndarray | None, config: TuneConfig,
             log: Callable[[dict[str, Any]], None] | None = None, progress: bool = False,
             checkpoint: str | Path | None = None) -> tuple[Any, CosineHead, list[dict[str, Any]]]:
    """Train the last blocks + a cosine classifier; early stopping on validation macro F1.

    Returns (tuned encoder, head, per-epoch history). The best epoch's weights are kept. With
    `checkpoint`, a rerun continues after the last finished epoch saved there."""
    import torch
    from torch import nn

    from fashionlens.encoders.torch_utils import autocast_dtype, resolve_device
    from fashionlens.encoders.tuned import TunedImageEncoder
    from fashionlens.progress import track

    cfg = config
    torch.manual_seed(cfg.seed)
    dev = resolve_device(cfg.device)
    tuned = TunedImageEncoder(encoder, cfg.unfreeze_blocks)
    tower = tuned.tower.to(dev)
    k = len(classes)
    weight = nn.Parameter(torch.randn(k, tuned.dim, device=dev) * 0.01)
    bias = nn.Parameter(torch.zeros(k, device=dev))
    backbone = [p for p in tower.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [weight, bias], "lr": cfg.lr},
                             {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult}], weight_decay=cfg.weight_decay)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=dev)
    loss_fn = nn.CrossEntropyLoss(weight=w, label_smoothing=cfg.label_smoothing)
    workers = cfg.num_workers if cfg.num_workers >= 0 else (min(8, (os.cpu_count() or 2) - 1) if dev.type == "cuda" else 0)
    loader = torch.utils.data.DataLoader(
        _Photos(train.images, y_train, tuned.preprocess, cfg.augment), batch_size=cfg.batch_size, shuffle=True,
        num_workers=workers, drop_last=len(train) > cfg.batch_size, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed))
    sched = one_cycle(opt, [cfg.lr, cfg.lr * cfg.backbone_lr_mult], cfg.epochs * max(1, len(loader)),
                      pct_start=0.15)
    amp = autocast_dtype(dev)
    best, best_state, waited, history, start = -np.inf, None, 0, [], 1
    ckpt = _Checkpoint(checkpoint, {"config": asdict(cfg), "classes": [str(c) for c in classes],
                                    "train": [str(i) for i in train.ids], "val": [str(i) for i in val.ids]})
    saved = ckpt.load()
    if saved is not None:  # continue after the last finished epoch
        t = saved["tensors"]
        tuned.load_trainable_state({k[2:]: v for k, v in t.items() if k.startswith("t.")})
        with torch.no_grad():
            weight.copy_(t["cls.weight"].to(dev))
            bias.copy_(t["cls.bias"].to(dev))
        opt.load_state_dict(saved["optim"]["opt"])
        sched.load_state_dict(saved["optim"]["sched"])
        best_state = ({k[7:]: v for k, v in t.items() if k.startswith("best.t.")},
                      CosineHead(t["best.weight"].numpy(), t["best.bias"].numpy(), cfg.scale))
        best, waited, history, start = saved["best"], saved["waited"], saved["history"], saved["epoch"] + 1
        for row in history:  # the log file is rewritten from the start by the caller
            if log is not None:
                log(row)
    for epoch in range(start, cfg.epochs + 1):
        if waited >= cfg.patience:
            break
        t0, total, seen = time.perf_counter(), 0.0, 0
        # order and augmentation depend on (seed, epoch) alone: a resumed run repeats an uninterrupted one
        loader.generator.manual_seed(cfg.seed + epoch)
        torch.manual_seed(cfg.seed + epoch)
        tower.train()
        batches = track(loader, f"fine-tuning, epoch {epoch}/{cfg.epochs}") if progress else loader
        for x, y in batches:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                feats = tower(x)  # unit norm
            logits = cfg.scale * feats.float() @ nn.functional.normalize(weight, dim=1).T + bias
            loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(f"fine-tuning loss became {float(loss)} at epoch {epoch}; lower tune.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, seen = total + float(loss.detach()) * len(y), seen + len(y)
        head = CosineHead(nn.functional.normalize(weight, dim=1).detach().cpu().numpy(),
                          bias.detach().cpu().numpy(), cfg.scale)
        proba = head.predict_proba(tuned.encode_images(val.images)) if len(val) else None
        row: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1),
                               "seconds": round(time.perf_counter() - t0, 2)}
        if proba is not None:
            m = classification_metrics(y_val, proba.argmax(1), list(classes), proba)
            row |= {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_top5_accuracy": m["top5_accuracy"]}
        score = row.get("val_macro_f1", -row["train_loss"])
        row["best"] = improved = score > best + 1e-4
        if improved:
            best, waited = score, 0
            best_state = (tuned.trainable_state(), head)
        else:
            waited += 1
        history.append(row)
        if log is not None:
            log(row)
        tensors = {f"t.{k}": v for k, v in tuned.trainable_state().items()}
        tensors |= {f"best.t.{k}": v for k, v in best_state[0].items()}
        tensors |= {"cls.weight": weight, "cls.bias": bias, "best.weight": torch.from_numpy(best_state[1].weight_),
                    "best.bias": torch.from_numpy(best_state[1].bias_)}
        ckpt.save(epoch, tensors, {"opt": opt.state_dict(), "sched": sched.state_dict()},
                  {"best": best, "waited": waited, "history": history})
    assert best_state is not None  # epoch 1 always improves on -inf
    tuned.load_trainable_state(best_state[0])
    tower.eval()  # stays on the device it trained on: predictions run there too
    return tuned, best_state[1], history
