"""Retrieval losses as pure functions on embedding tensors (computed in fp32 for stability)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's clamp: temperature never below 0.01


def info_nce(a: torch.Tensor, b: torch.Tensor, log_scale: torch.Tensor | float = math.log(1 / 0.07),
             extra_a: torch.Tensor | None = None, extra_b: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over paired rows of `a` and `b` (row i of a matches row i of b).

    `log_scale` is the log of the inverse temperature (learnable in practice); it is clamped.
    `extra_a` / `extra_b`: more negatives for the b->a / a->b direction (e.g. a cross-batch memory of
    earlier batches' embeddings, detached), appended to the in-batch candidates.
    """
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1)
    scale = torch.as_tensor(log_scale, dtype=torch.float32, device=a.device).clamp(max=MAX_LOGIT_SCALE).exp()
    logits = scale * a @ b.T
    target = torch.arange(len(a), device=a.device)
    a_to_b, b_to_a = logits, logits.T
    if extra_b is not None and len(extra_b):
        a_to_b = torch.cat([a_to_b, scale * a @ F.normalize(extra_b.float(), dim=-1).T], 1)
    if extra_a is not None and len(extra_a):
        b_to_a = torch.cat([b_to_a, scale * b @ F.normalize(extra_a.float(), dim=-1).T], 1)
    return 0.5 * (F.cross_entropy(a_to_b, target) + F.cross_entropy(b_to_a, target))


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
