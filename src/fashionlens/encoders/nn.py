"""Trainable towers for any (image encoder, text encoder) pair and the ways to fine-tune them.

A tower wraps a registry `Encoder`; the protocol it needs from it:
- frozen (any encoder): only `encode_images` / `encode_texts`; its features are computed once
  through `fashionlens.embed` (cached) and only the projection head trains;
- partial / lora: the encoder exposes `.model`, a torch module that is differentiable —
  an image network mapping a pixel batch (`encoder.preprocess`) to pooled features (timm models
  with `num_classes=0`, e.g. efficientnet-lite0, ViTs), or a text model that is either a
  sentence-transformers `SentenceTransformer` or a Hugging Face model with `encoder.tokenizer`
  (mean-pooled).

Strategies: "frozen"; "partial" (unfreeze the last N blocks and everything after them: timm
`.blocks`, BERT `encoder.layer`); "lora" (PEFT LoRA adapters on the attention projections
query/key/value or qkv of ViT/BERT-like towers; CNNs such as efficientnet-lite0 have no such
linear layers — use "partial" for them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashionlens.catalog.core import Catalog
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError

STRATEGIES = ("frozen", "partial", "lora")
_BLOCK_NAMES = ("blocks", "layer", "layers", "stages")
_ATTN_NAMES = ("query", "key", "value", "qkv", "q_proj", "k_proj", "v_proj")

class ProjectionHead(nn.Module):
    """Linear map, or a residual MLP (linear skip + GELU MLP) into the shared space."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 1024, kind: str = "mlp", dropout: float = 0.1):
        super().__init__()
        self.kind = kind
        self.skip = nn.Linear(in_dim, out_dim)
        if kind == "mlp":
            self.mlp = nn.Sequential(
                nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
            )
        elif kind != "linear":
            raise InvalidInputError(f"unknown head kind '{kind}' (use 'mlp' or 'linear')")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)
        return y + self.mlp(x) if self.kind == "mlp" else y


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


class LowRankHead(nn.Module):
    """A learned low-rank metric: x -> P x with P (rank x dim), no MLP; cosine in the projected
    space. `init_from` starts P at the top right-singular vectors of training features, so training
    starts near the untuned cosine; fewer parameters than the MLP to fit ~80 materials."""

    def __init__(self, dim: int, rank: int = 256):
        super().__init__()
        self.proj = nn.Linear(dim, rank, bias=False)

    def init_from(self, features: torch.Tensor) -> None:
        """P's rows = the leading right-singular vectors of `features` (n, dim); rows beyond the
        features' rank stay at their small random init."""
        vh = torch.linalg.svd(features.float(), full_matrices=False).Vh
        k = min(len(vh), self.proj.out_features)
        with torch.no_grad():
            self.proj.weight[:k] = vh[:k]
            self.proj.weight[k:] *= 0.01

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class DiagonalHead(nn.Module):
    """Per-channel weights on the features (LPIPS' linear layer on unit-norm parts), starting at 1."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class HeadAverage(nn.Module):
    """K heads (e.g. fitted with different seeds): their outputs unit-normalised, side by side,
    divided by sqrt(K), so the cosine between two outputs is the mean of the K heads' cosines."""

    def __init__(self, heads: Sequence[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = [F.normalize(h(x), dim=-1) for h in self.heads]
        return torch.cat(z, dim=-1) / math.sqrt(len(z))


HEAD_KINDS = ("mlp", "lowrank", "diagonal")


def check_head(kind: str, rank: int = 256, n_heads: int = 1) -> None:
    """Refuse head settings `perceptual_head` cannot build, naming the bad one."""
    if kind not in HEAD_KINDS:
        raise InvalidInputError(f"unknown perceptual head '{kind}' (use {', '.join(HEAD_KINDS)})")
    if n_heads < 1 or rank < 1:
        raise InvalidInputError(f"perceptual head: n_heads ({n_heads}) and rank ({rank}) must be >= 1")


def perceptual_head(dim: int, kind: str = "mlp", hidden: int = 512, dropout: float = 0.1, rank: int = 256,
                    n_heads: int = 1) -> nn.Module:
    """The head a perceptual config names: one of HEAD_KINDS, or `n_heads` > 1 of them averaged."""
    check_head(kind, rank, n_heads)

    def one() -> nn.Module:
        if kind == "lowrank":
            return LowRankHead(dim, rank)
        return DiagonalHead(dim) if kind == "diagonal" else PerceptualHead(dim, hidden, dropout)

    return one() if n_heads == 1 else HeadAverage([one() for _ in range(n_heads)])


def head_out_dim(head: nn.Module, dim: int) -> int:
    """Width of `head`'s output for `dim`-wide input."""
    if isinstance(head, HeadAverage):
        return sum(head_out_dim(h, dim) for h in head.heads)
    return head.proj.out_features if isinstance(head, LowRankHead) else dim



class Tower(nn.Module):
    """One modality's encoder inside training: `inputs(rows)` builds a batch, `forward` embeds it."""

    modality: str = ""
    out_dim: int = 0
    encoder: Encoder

    def bind(self, catalog: Catalog, features: np.ndarray | None = None) -> None:
        """Attach the training catalog (rows in `inputs` index it); frozen towers take its
        precomputed `features` (the training layer embeds them, cached)."""
        raise NotImplementedError

    def inputs(self, rows: Sequence[int]) -> Any:
        raise NotImplementedError

    def encode(self, items: list[Any]) -> torch.Tensor:
        """Features of raw items (PIL images/paths or strings) for inference."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> Tower:
        super().train(mode)
        model = getattr(self, "model", None)
        if model is not None:  # backbones stay in eval: frozen BatchNorm statistics, no dropout
            model.eval()
        return self


class FeatureTower(Tower):
    """A frozen encoder: features come from `fashionlens.embed` (cached), nothing trains."""

    def __init__(self, encoder: Encoder, modality: str):
        super().__init__()
        encoder._require(modality)
        self.encoder, self.modality, self.out_dim = encoder, modality, int(encoder.dim)
        self.features: torch.Tensor | None = None

    def bind(self, catalog: Catalog, features: np.ndarray | None = None) -> None:
        if features is None or len(features) != len(catalog):
            raise ValueError(f"frozen {self.modality} tower needs one precomputed feature row per catalog item")
        self.features = torch.as_tensor(features)

    def inputs(self, rows: Sequence[int]) -> torch.Tensor:
        assert self.features is not None, "bind() the tower to a catalog first"
        return self.features[list(rows)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x  # already unit-norm encoder output

    def encode(self, items: list[Any]) -> torch.Tensor:
        fn = self.encoder.encode_images if self.modality == "image" else self.encoder.encode_texts
        return torch.as_tensor(fn(items))


class ImageTower(Tower):
    """A differentiable image network (`encoder.model`) on pixel batches."""

    modality = "image"

    def __init__(self, encoder: Encoder, image_size: int | None = None):
        super().__init__()
        model = _torch_model(encoder)
        self.encoder, self.model = encoder, model
        self.preprocess = replace(encoder.preprocess, size=image_size) if image_size else encoder.preprocess
        self.out_dim = int(getattr(model, "num_features", 0) or encoder.dim)
        self.paths: list[str] = []

    def bind(self, catalog: Catalog, features: np.ndarray | None = None) -> None:
        self.paths = list(catalog.images)

    def inputs(self, rows: Sequence[int]) -> torch.Tensor:
        from fashionlens.encoders.torch_utils import pixel_batch

        return pixel_batch([self.paths[r] for r in rows], self.preprocess)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        # unit norm like every Encoder's output, so heads fit frozen (cached) and trained towers alike
        return nn.functional.normalize((out.flatten(1) if out.dim() > 2 else out).float(), dim=-1)

    def encode(self, items: list[Any]) -> torch.Tensor:
        from fashionlens.encoders.torch_utils import pixel_batch

        dev = next(self.parameters()).device
        return self(pixel_batch(items, self.preprocess).to(dev))


class TextTower(Tower):
    """A differentiable text model: sentence-transformers, or HF model + `encoder.tokenizer`."""

    modality = "text"

    def __init__(self, encoder: Encoder, max_length: int = 48):
        super().__init__()
        model = _torch_model(encoder)
        self.encoder, self.model, self.max_length = encoder, model, max_length
        self.tokenizer = getattr(encoder, "tokenizer", None)
        self.is_st = self.tokenizer is None and hasattr(model, "preprocess")
        if not self.is_st and self.tokenizer is None:
            raise InvalidInputError(f"text encoder '{encoder.name}' needs a SentenceTransformer .model or a .tokenizer")
        self.out_dim = int(encoder.dim)
        self.texts: list[str] = []

    def bind(self, catalog: Catalog, features: np.ndarray | None = None) -> None:
        self.texts = list(catalog.texts)

    def inputs(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._tokenize([self.texts[r] for r in rows])

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if self.is_st:
            feats = self.model.preprocess(texts)
            return {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}
        return dict(self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.is_st:
            out = self.model(dict(x))["sentence_embedding"]
        else:
            hidden = self.model(**x).last_hidden_state
            mask = x["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(out.float(), dim=-1)  # unit norm, as the encoder's own output

    def encode(self, items: list[Any]) -> torch.Tensor:
        dev = next(self.parameters()).device
        return self({k: v.to(dev) for k, v in self._tokenize([str(t) for t in items]).items()})


def _torch_model(encoder: Encoder) -> nn.Module:
    model = getattr(encoder, "model", None)
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"encoder '{encoder.name}' exposes no torch `.model`, so only strategy 'frozen' can train it"
        )
    return model


def find_blocks(model: nn.Module) -> tuple[str, int]:
    """Name and length of the model's main stack of blocks (the longest `blocks`/`layer` list)."""
    best: tuple[str, int] = ("", 0)
    for name, mod in model.named_modules():
        is_stack = name.rsplit(".", 1)[-1] in _BLOCK_NAMES and isinstance(mod, nn.Sequential | nn.ModuleList)
        if is_stack and len(mod) > best[1]:
            best = (name, len(mod))
    if not best[0]:
        raise InvalidInputError(f"{type(model).__name__} has no `blocks`/`layer` stack to unfreeze partially")
    return best


def freeze_all_but_last(model: nn.Module, n_blocks: int) -> list[str]:
    """Freeze everything, then unfreeze the last `n_blocks` blocks and every parameter after them.

    Parameters are in registration order, so "after" catches the final norm / conv head.
    Returns the names of the trainable parameters.
    """
    name, length = find_blocks(model)
    if not 1 <= n_blocks <= length:
        raise InvalidInputError(f"unfreeze_blocks must be in [1, {length}] for this model, got {n_blocks}")
    start = f"{name}.{length - n_blocks}."
    on = False
    for pname, p in model.named_parameters():
        on = on or pname.startswith(start)
        p.requires_grad_(on)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def attention_targets(model: nn.Module) -> list[str]:
    """Names (last component) of the attention projection Linear layers LoRA adapts."""
    found = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return sorted(found & set(_ATTN_NAMES))


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, targets: Sequence[str] | None = None,
             name: str = "model") -> list[str]:
    """Inject PEFT LoRA adapters in place; only adapter weights stay trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(targets or attention_targets(model))
    if not targets:
        raise InvalidInputError(
            f"LoRA: {name} has no attention projections ({'/'.join(_ATTN_NAMES)}) to adapt. LoRA is "
            "supported on the linear layers of ViT/BERT-like towers; fine-tune CNNs with strategy 'partial'"
        )
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0), model)
    for pname, p in model.named_parameters():
        p.requires_grad_("lora_" in pname)
    return [n for n, p in model.named_parameters() if p.requires_grad]


def build_tower(encoder: Encoder, modality: str, strategy: str = "frozen", *, unfreeze_blocks: int = 2,
                lora_r: int = 8, lora_alpha: int = 16, lora_targets: Sequence[str] | None = None,
                image_size: int | None = None) -> Tower:
    """A tower of `encoder` for `modality`, prepared for `strategy`."""
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"unknown strategy '{strategy}' (use one of {', '.join(STRATEGIES)})")
    if strategy == "frozen":
        if image_size and modality == "image":
            encoder.preprocess = replace(encoder.preprocess, size=image_size)  # cache key follows
        return FeatureTower(encoder, modality)
    tower = ImageTower(encoder, image_size) if modality == "image" else TextTower(encoder)
    if strategy == "partial":
        freeze_all_but_last(tower.model, unfreeze_blocks)
    else:
        add_lora(tower.model, lora_r, lora_alpha, lora_targets, encoder.name)
    return tower


def build_dual_encoder(cfg: dict[str, Any], image_encoder: Encoder, text_encoder: Encoder) -> DualEncoder:
    """Towers prepared for the config's strategies + heads (keys as in `RetrievalConfig.to_dict`)."""
    kw = dict(unfreeze_blocks=cfg["unfreeze_blocks"], lora_r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"],
              lora_targets=cfg["lora_targets"])
    it = build_tower(image_encoder, "image", cfg["image_strategy"], image_size=cfg["image_size"], **kw)
    tt = build_tower(text_encoder, "text", cfg["text_strategy"], **kw)
    return DualEncoder(it, tt, cfg["dim"], cfg["hidden"], cfg["head"], cfg["dropout"])


class DualEncoder(nn.Module):
    """Two towers + projection heads into one shared space, with a learnable temperature."""

    def __init__(self, image_tower: Tower, text_tower: Tower, dim: int = 256, hidden: int = 1024,
                 head: str = "mlp", dropout: float = 0.1):
        super().__init__()
        self.image_tower, self.text_tower = image_tower, text_tower
        self.image_head = ProjectionHead(image_tower.out_dim, dim, hidden, head, dropout)
        self.text_head = ProjectionHead(text_tower.out_dim, dim, hidden, head, dropout)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_image(self, x: Any) -> torch.Tensor:
        return self.image_head(self.image_tower(x).float())

    def embed_text(self, x: Any) -> torch.Tensor:
        return self.text_head(self.text_tower(x).float())

    def forward(self, image_inputs: Any, text_inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_image(image_inputs), self.embed_text(text_inputs)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only the weights training changes (heads, temperature, unfrozen blocks, adapters)."""
        return trainable_state(self)

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        load_trainable_state(self, state)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require a gradient, as CPU copies (frozen backbones stay out of checkpoints)."""
    return {n: p.detach().cpu().clone().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy `trainable_state` output back in; a state of another model is refused by name."""
    own = dict(module.named_parameters())
    missing = [n for n, p in own.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in own]
    if missing or unknown:
        raise InvalidInputError(f"checkpoint does not fit this model: missing {missing[:3]}, unknown {unknown[:3]}")
    with torch.no_grad():
        for n, v in state.items():
            own[n].copy_(v.to(own[n].device))


@torch.no_grad()
def embed_rows(model: DualEncoder, rows: Sequence[int], batch_size: int = 128,
               device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm (image, text) embeddings of bound-catalog rows, in eval mode."""
    was = model.training
    model.eval()
    dev = device or next(model.parameters()).device
    zi, zt = [], []
    for s in range(0, len(rows), batch_size):
        b = list(rows[s : s + batch_size])
        i, t = model(_to(model.image_tower.inputs(b), dev), _to(model.text_tower.inputs(b), dev))
        zi.append(nn.functional.normalize(i.float(), dim=-1).cpu())
        zt.append(nn.functional.normalize(t.float(), dim=-1).cpu())
    model.train(was)
    return torch.cat(zi).numpy(), torch.cat(zt).numpy()


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)
