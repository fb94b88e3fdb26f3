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
    epochs: int = 40
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 6
    seed: int = 0
