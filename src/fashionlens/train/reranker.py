"""Cross-modal attention re-ranker over a first stage's top-K.

For each (query text, candidate photo) pair, a small transformer attends over four tokens —
[CLS], the query embedding, the candidate embedding and their product — and adds a learned
correction to the first-stage cosine score. Trained listwise on the training pairs: each name's
first-stage top-K (hard negatives) with its own photo forced in, cross-entropy on the right one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashionlens.config import Config
from fashionlens.evaluation.metrics import target_ranks, topk
from fashionlens.train.engine import FitConfig, fit


@dataclass
class RerankerConfig(Config):
    k: int = 20
    width: int = 64
    heads: int = 4
    layers: int = 1
    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class PairScorer(nn.Module):
    """Score (query, candidate) pairs: first-stage score x scale + attention-block correction."""

    def __init__(self, dim: int, width: int = 64, heads: int = 4, layers: int = 1):
        super().__init__()
        self.q, self.c = nn.Linear(dim, width), nn.Linear(dim, width)
        self.p = nn.Linear(dim, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, 4, width) * 0.02)  # token type: cls, query, candidate, product
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(width, 1)
        nn.init.zeros_(self.out.weight)  # starts as the first stage's ranking
        nn.init.zeros_(self.out.bias)
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, q: torch.Tensor, c: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
        """q (B, d), c (B, K, d), s0 (B, K) first-stage cosines -> (B, K) scores."""
        b, k, _ = c.shape
        qe = q[:, None, :].expand(b, k, -1)
        tok = torch.stack([self.q(qe), self.c(c), self.p(qe * c)], dim=2).reshape(b * k, 3, -1)
        x = torch.cat([self.cls.expand(b * k, -1, -1), tok], dim=1) + self.pos
        h = self.blocks(x)[:, 0]
        return self.scale * s0 + self.out(h).view(b, k)


class _ListwiseTask:
    """Each training name against its first-stage candidates: cross-entropy on its own photo."""

    device = torch.device("cpu")

    def __init__(self, module: PairScorer, t: torch.Tensor, im: torch.Tensor, cand: torch.Tensor,
                 target: torch.Tensor, cfg: RerankerConfig):
        self.module, self.t, self.im, self.cand, self.target, self.cfg = module, t, im, cand, target, cfg

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": list(self.module.parameters())}]

    def n_batches(self) -> int:
        return -(-len(self.t) // self.cfg.batch_size)

    def batches(self, epoch: int) -> Any:
        order = torch.as_tensor(np.random.default_rng(self.cfg.seed + epoch).permutation(len(self.t)))
        return (order[s : s + self.cfg.batch_size] for s in range(0, len(order), self.cfg.batch_size))

    def loss(self, model: nn.Module, b: torch.Tensor) -> torch.Tensor:
        q, c = self.t[b].to(self.device), self.im[self.cand[b]].to(self.device)
        scores = model(q, c, (c @ q[:, :, None]).squeeze(-1))
        return nn.functional.cross_entropy(scores.float(), self.target[b].to(self.device))

    def validate(self) -> None:
        return None


class CrossModalReranker:
    """fit(text_emb, image_emb) on paired training rows; rerank a gallery's top-K for new queries."""

    def __init__(self, config: RerankerConfig | None = None):
        self.config = config or RerankerConfig()

    def fit(self, text_emb: np.ndarray, image_emb: np.ndarray, progress: bool = False) -> CrossModalReranker:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        t = torch.as_tensor(np.asarray(text_emb, dtype=np.float32))
        im = torch.as_tensor(np.asarray(image_emb, dtype=np.float32))
        cand = topk(t.numpy(), im.numpy(), min(cfg.k, len(im)))
        own = np.arange(len(t))
        missing = ~(cand == own[:, None]).any(1)
        cand[missing, -1] = own[missing]  # the right photo is always among the candidates
        self.model_ = PairScorer(t.shape[1], cfg.width, cfg.heads, cfg.layers)
        task = _ListwiseTask(self.model_, t, im, torch.as_tensor(cand),
                             torch.as_tensor((cand == own[:, None]).argmax(1)), cfg)
        res = fit(task, FitConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, clip_grad=1.0,
                                  seed=cfg.seed, description="re-ranker"), progress=progress)
        self.history_ = [{"epoch": h["epoch"], "train_loss": h["train_loss"]} for h in res.history]
        self.seconds_ = res.seconds
        self.model_.cpu().eval()
        return self

    @torch.no_grad()
    def rerank(self, query_emb: np.ndarray, gallery_emb: np.ndarray, k: int | None = None,
               batch_size: int = 256) -> np.ndarray:
        """(q, k) gallery indices: the first stage's top-k, re-ordered by the re-ranker."""
        k = min(k or self.config.k, len(gallery_emb))
        cand = topk(query_emb, gallery_emb, k)
        g = torch.as_tensor(np.asarray(gallery_emb, dtype=np.float32))
        out = np.empty_like(cand)
        for s in range(0, len(cand), batch_size):
            q = torch.as_tensor(np.asarray(query_emb[s : s + batch_size], dtype=np.float32))
            c = g[torch.as_tensor(cand[s : s + batch_size])]
            scores = self.model_(q, c, (c @ q[:, :, None]).squeeze(-1)).numpy()
            out[s : s + batch_size] = np.take_along_axis(cand[s : s + batch_size], np.argsort(-scores, 1), 1)
        return out

    def ranks(self, query_emb: np.ndarray, gallery_emb: np.ndarray, targets: np.ndarray,
              k: int | None = None) -> np.ndarray:
        """0-based rank of each query's target after re-ranking (beyond the top-k: first-stage rank)."""
        first = target_ranks(query_emb, gallery_emb, targets)
        top = self.rerank(query_emb, gallery_emb, k)
        hit = top == np.asarray(targets)[:, None]
        return np.where(hit.any(1), hit.argmax(1), np.maximum(first, top.shape[1]))

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        from fashionlens.manifest import write_manifest
        from fashionlens.utils import atomic_write

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with atomic_write(root / "reranker.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in self.model_.state_dict().items()}, str(tmp))
        write_manifest(root, "reranker", self.config.to_dict(), dim=self.model_.q.in_features)

    @classmethod
    def load(cls, path: str | Path) -> CrossModalReranker:
        from safetensors.torch import load_file

        from fashionlens.manifest import read_manifest

        root = Path(path)
        meta: dict[str, Any] = read_manifest(root, "reranker")
        self = cls(RerankerConfig.from_dict(meta["config"], str(root / "reranker.json")))
        c = self.config
        self.model_ = PairScorer(meta["dim"], c.width, c.heads, c.layers)
        self.model_.load_state_dict(load_file(str(root / "reranker.safetensors")))
        self.model_.eval()
        return self
