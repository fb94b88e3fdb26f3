"""A training run directory: config.yaml, metrics.jsonl, curves.png and safetensors checkpoints.

Checkpoints hold no pickle: weights and optimizer tensors go to safetensors, the rest
(step, epoch, best score, optimizer hyper-parameters, scheduler state) to state.json, the
checkpoint's run manifest (kind "checkpoint", with the engine's config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fashionlens.manifest import own_fields, read_manifest, write_manifest
from fashionlens.utils import (
    atomic_dir,
    atomic_write,
    check_dir,
    save_figure,
)

CHECKPOINT_FILES = ("state.json", "weights.safetensors", "optimizer.safetensors")


class RunDir:
    """Files of one run. `checkpoints/last` is the latest good epoch, `checkpoints/best` the best."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.ckpt = self.root / "checkpoints"

    # ---- config & metrics -------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        import yaml

        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.root / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line (a line is written whole or not at all for readers)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        path = self.root / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def plot(self) -> Path | None:
        """curves.png: train loss and validation Recall@10 per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ep = [r for r in self.records() if r.get("event") == "epoch"]
        if not ep:
            return None
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
        a.plot([r["epoch"] for r in ep], [r["train_loss"] for r in ep], marker="o")
        a.set(xlabel="epoch", ylabel="train loss", title="loss")
        b.plot([r["epoch"] for r in ep], [r["val_recall@10"] for r in ep], marker="o", color="C1")
        b.set(xlabel="epoch", ylabel="val Recall@10 (text→image)", title="validation")
        return save_figure(fig, self.root / "curves.png")

    # ---- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, tag: str, weights: dict[str, torch.Tensor], state: dict[str, Any],
                        optimizer: torch.optim.Optimizer | None = None, config: dict[str, Any] | None = None) -> None:
        """Write weights (+ optimizer tensors) and state (with the training `config`) into a temporary
        folder swapped in for `checkpoints/<tag>` (`atomic_dir`): a crash leaves the previous epoch's
        checkpoint whole."""
        from safetensors.torch import save_file

        with atomic_dir(self.ckpt / tag, marks=CHECKPOINT_FILES) as d:
            with atomic_write(d / "weights.safetensors") as tmp:
                save_file(weights, str(tmp))
            if optimizer is not None:
                tensors, meta = _flatten_optimizer(optimizer.state_dict())
                with atomic_write(d / "optimizer.safetensors") as tmp:
                    save_file(tensors, str(tmp))
                state = {**state, "optimizer": meta}
            write_manifest(d, "checkpoint", config, **state)

    def has_checkpoint(self, tag: str) -> bool:
        """Whether `checkpoints/<tag>` is complete (an interrupted swap is finished first; a damaged
        one raises FolderError naming the file)."""
        return (check_dir(self.ckpt / tag) / "state.json").is_file()

    def load_checkpoint(self, tag: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any] | None]:
        """(weights, state, optimizer state_dict or None); the state is the manifest without its kind,
        format_version and config."""
        from safetensors.torch import load_file

        d = self.ckpt / tag
        if not self.has_checkpoint(tag):
            raise FileNotFoundError(f"no complete checkpoint '{tag}' in {self.root}")
        state = own_fields(read_manifest(d, "checkpoint"))
        weights = load_file(str(d / "weights.safetensors"))
        opt = None
        if "optimizer" in state and (d / "optimizer.safetensors").is_file():
            opt = _unflatten_optimizer(load_file(str(d / "optimizer.safetensors")), state.pop("optimizer"))
        return weights, state, opt


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}
