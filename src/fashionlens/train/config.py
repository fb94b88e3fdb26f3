"""Training configs as plain dataclasses: importing them loads no torch."""

from __future__ import annotations

from dataclasses import dataclass

from fashionlens.config import Config


@dataclass
class AlignConfig(Config):
    """Defaults measured on Myntra (docs/benchmarks.md)."""

    dim: int = 256
    hidden: int = 1024
    head: str = "mlp"  # "mlp" (residual MLP) or "linear"
    dropout: float = 0.2
    supcon_weight: float = 1.0  # 0 disables the label term; 0.5 trades image→image for text→image
    supcon_temperature: float = 0.1
    # > 1: batches are groups of this many same-label name neighbours (train/negatives.py), so the
    # in-batch negatives are look-alikes (other black T-shirts). Off: 16 cost 0.018 whole-catalog
    # R@10 at 4k training items (docs/bench/retrieval_catalog.md); untested at 37.6k
    hard_negatives: int = 0
    # > 0: InfoNCE also contrasts each batch with this many photos/names of the batches before it
    # (a cross-batch memory of detached head outputs, used from the second epoch on). Off: 4,096
    # halved whole-catalog R@10 at 37.6k training items (docs/bench/retrieval_catalog.md)
    memory: int = 0
    epochs: int = 40
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 6
    seed: int = 0
