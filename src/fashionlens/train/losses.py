"""Retrieval losses as pure functions on embedding tensors (computed in fp32 for stability)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: temperature never below 0.01


def info_nce(a: torch.Tensor, b: torch.Tensor, log_scale: torch.Tensor | float = math.log(1 / 0.07)) -> torch.Tensor:
    """Symmetric InfoNCE over paired rows of `a` and `b` (row i of a matches row i of b).

    `log_scale` is the log of the inverse temperature (learnable in practice); it is clamped.
    """
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    scale = torch.as_tensor(log_scale, dtype=torch.float32, device=a.device).clamp(max=MAX_LOGIT_SCALE).exp()
    logits = scale * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def supcon(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) over one batch of embeddings.

    Anchors without any positive in the batch are ignored.
    """
    z = F.normalize(z.float(), dim=-1)
    n = len(z)
    logits = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    keep = n_pos > 0
    if not keep.any():
        return z.sum() * 0.0
    mean_log_prob = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(1)[keep] / n_pos[keep]
    return -mean_log_prob.mean()


def info_nce_supcon(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, log_scale: torch.Tensor | float,
                    weight: float = 0.5, temperature: float = 0.1) -> torch.Tensor:
    """Blend: cross-modal InfoNCE + `weight` x SupCon on both towers' embeddings by category."""
    z = torch.cat([a, b])
    y = torch.cat([labels, labels])
    return info_nce(a, b, log_scale) + weight * supcon(z, y, temperature)


def batch_hard_triplet(z: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on cosine distance.

    For each anchor: the farthest same-label item and the closest other-label item.
    """
    z = F.normalize(z.float(), dim=-1)
    d = 1.0 - z @ z.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos = same & ~eye
    valid = pos.any(1) & (~same).any(1)
    if not valid.any():
        return z.sum() * 0.0
    hardest_pos = torch.where(pos, d, torch.full_like(d, -1.0)).max(1).values
    hardest_neg = torch.where(~same, d, torch.full_like(d, 3.0)).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def cross_modal_batch_hard(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Two-tower batch-hard triplet: anchor a_i, positive b_i, hardest negative b_j (j != i), both ways."""
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    d = 1.0 - a @ b.T
    pos = d.diag()
    masked = d + torch.eye(len(a), device=a.device) * 3.0
    l_ab = F.relu(pos - masked.min(1).values + margin)
    l_ba = F.relu(pos - masked.min(0).values + margin)
    return 0.5 * (l_ab.mean() + l_ba.mean())
