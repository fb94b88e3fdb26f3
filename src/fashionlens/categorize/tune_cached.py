"""Partial fine-tuning on cached activations (`tune={"cached": True}`): CNN fine-tune quality in CPU minutes.

The frozen part of the backbone (stem + all but the last `unfreeze_blocks` blocks) runs once per photo
and its mirror; its outputs are kept in memory in fp16. Each epoch then trains only the last blocks,
the conv head and a cosine classifier on those activations through the one training engine, so an
epoch costs a small fraction of a full forward pass. Augmentation is the flip (a random view per item
and epoch); the random crops of `method="finetune"` would need the stem rerun every epoch.

The backbone stays in eval mode (frozen BatchNorm statistics, as in `finetune`), so prefix + suffix
computes exactly the tuned encoder's forward pass: the result is the same `TunedImageEncoder` +
`CosineHead` as `finetune`, saved and loaded the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.categorize.heads import CosineHead
from fashionlens.categorize.tune import ClassifierTask
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.evaluation.classification import classification_metrics

_PARTS = ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "forward_head")


def can_split(model: Any) -> bool:
    """Whether `split_model` knows this network (timm EfficientNet / MobileNet-style)."""
    return model is not None and all(hasattr(model, a) for a in _PARTS)


def split_model(model: Any, unfreeze_blocks: int) -> tuple[Any, Any]:
    """(prefix, suffix) modules of a timm EfficientNet-style network (`conv_stem`, `blocks`, `conv_head`):
    suffix(prefix(x)) == unit-normalised model(x)."""
    from torch import nn

    if not can_split(model):
        raise InvalidInputError(f"cached fine-tuning needs a timm EfficientNet-style backbone; "
                                f"{type(model).__name__} is not one: use tune={{'cached': False}}")
    start = len(model.blocks) - unfreeze_blocks
    if not 1 <= unfreeze_blocks <= len(model.blocks):
        raise InvalidInputError(f"unfreeze_blocks must be in [1, {len(model.blocks)}], got {unfreeze_blocks}")

    class Prefix(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem, self.bn1, self.blocks = model.conv_stem, model.bn1, model.blocks[:start]

        def forward(self, x: Any) -> Any:
            return self.blocks(self.bn1(self.conv_stem(x)))

    class Suffix(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks, self.conv_head, self.bn2 = model.blocks[start:], model.conv_head, model.bn2
            self.pool = model.forward_head

        def forward(self, a: Any) -> Any:
            out = self.pool(self.bn2(self.conv_head(self.blocks(a.float()))))
            return nn.functional.normalize(out.flatten(1).float(), dim=-1)

    return Prefix(), Suffix()


def activations(prefix: Any, images: Sequence[Any], preprocess: Any, flip: bool = False,
                batch_size: int = 64, progress: str | None = None) -> Any:
    """(n, C, H, W) fp16 prefix outputs of the photos (mirrored with `flip`), computed once."""
    import torch

    from fashionlens.catalog.images import open_image
    from fashionlens.encoders.torch_utils import pixel_batch

    chunks = [list(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    if progress:
        from fashionlens.progress import track

        chunks = track(chunks, progress)
    out = []
    prefix.eval()
    with torch.inference_mode():
        for chunk in chunks:
            ims = [open_image(p) for p in chunk]
            x = pixel_batch(ims, preprocess)
            if flip:
                x = torch.flip(x, dims=[3])  # the mirrored photo (the letterbox is symmetric)
            # channels_last, as the encoder runs: ~2x faster convolutions on CPU
            out.append(prefix(x.contiguous(memory_format=torch.channels_last)).to(torch.float16).contiguous())
    return torch.cat(out)


class _CachedTask(ClassifierTask):
    """Engine task: a random view (photo or mirror) of each item's cached activations per epoch,
    label-smoothed cross-entropy through the trainable suffix + cosine classifier."""

    def __init__(self, module: Any, views: list[Any], y: np.ndarray, val_views: list[Any], y_val: np.ndarray,
                 classes: Sequence[str], weights: np.ndarray | None, cfg: Any):
        import torch

        self.module, self.views, self.val_views, self.cfg = module, views, val_views, cfg
        self.y, self.y_val, self.classes = torch.from_numpy(np.asarray(y, np.int64)), y_val, list(classes)
        self._setup(weights)

    def n_batches(self) -> int:
        return max(1, -(-len(self.y) // self.cfg.batch_size))

    def train_mode(self) -> None:
        self.module.tower.eval()  # frozen BatchNorm statistics: prefix + suffix == the encoder's forward

    def batches(self, epoch: int) -> Any:
        import torch

        g = torch.Generator().manual_seed(self.cfg.seed + epoch)
        perm = torch.randperm(len(self.y), generator=g)
        view = torch.randint(len(self.views), (len(self.y),), generator=g)  # photo or mirror, per item
        bs = self.cfg.batch_size
        return ((perm[i : i + bs], view[i : i + bs]) for i in range(0, len(perm), bs))

    def loss(self, model: Any, batch: Any) -> Any:
        import torch

        rows, view = batch
        a = torch.where(view.view(-1, 1, 1, 1).bool(), self.views[-1][rows], self.views[0][rows])
        return self.loss_fn.to(self.device)(model(a.to(self.device)), self.y[rows].to(self.device))

    def head(self) -> CosineHead:
        from torch import nn

        return CosineHead(nn.functional.normalize(self.module.weight, dim=1).detach().cpu().numpy(),
                          self.module.bias.detach().cpu().numpy(), self.cfg.scale)

    def features(self, acts: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.cat([self.module.tower(acts[i : i + 512]) for i in range(0, len(acts), 512)]).numpy()

    def validate(self) -> dict[str, float] | None:
        if not len(self.y_val):
            return None
        head = self.head()
        proba = np.mean([head.predict_proba(self.features(v)) for v in self.val_views], axis=0)
        m = classification_metrics(self.y_val, proba.argmax(1), self.classes, proba)
        return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_top5_accuracy": m["top5_accuracy"]}


def finetune_cached(encoder: Encoder, train: Catalog, y_train: np.ndarray, val: Catalog, y_val: np.ndarray,
                    classes: Sequence[str], weights: np.ndarray | None, config: Any,
                    log: Callable[[dict[str, Any]], None] | None = None,
                    progress: bool = False) -> tuple[Any, CosineHead, list[dict[str, Any]]]:
    """Like `tune.finetune` (same return value), trained on cached activations of the frozen part."""
    import torch

    from fashionlens.categorize.tune import _CosineClassifier
    from fashionlens.encoders.tuned import TunedImageEncoder
    from fashionlens.train.engine import FitConfig, fit

    cfg = config
    torch.manual_seed(cfg.seed)
    tuned = TunedImageEncoder(encoder, cfg.unfreeze_blocks)
    prefix, suffix = split_model(tuned.tower.model, cfg.unfreeze_blocks)
    pp = tuned.preprocess
    say = (lambda s: s) if progress else (lambda s: None)
    flips = (False, True) if cfg.augment else (False,)
    views = [activations(prefix, train.images, pp, flip, progress=say(f"caching activations {k + 1}/{len(flips)}"))
             for k, flip in enumerate(flips)]
    val_views = [activations(prefix, val.images, pp, flip) for flip in (False, True)] if len(val) else []
    module = _CosineClassifier.build(suffix, len(classes), tuned.dim, cfg.scale)
    task = _CachedTask(module, views, y_train, val_views, np.asarray(y_val, np.int64), classes, weights, cfg)
    fit_cfg = FitConfig(epochs=cfg.epochs, weight_decay=cfg.weight_decay, lr=cfg.lr, schedule="onecycle", warmup=0.15,
                        monitor="val_macro_f1" if len(val) else "train_loss",
                        monitor_mode="max" if len(val) else "min", min_delta=1e-4, patience=cfg.patience,
                        seed=cfg.seed, device="cpu", description="fine-tuning on cached activations")
    res = fit(task, fit_cfg, progress=progress,
              log=None if log is None else lambda row: log({**row, "epoch": row["epoch"] + 1}))
    tuned.tower.eval()
    return tuned, task.head(), [{**r, "epoch": r["epoch"] + 1} for r in res.history]
