import math

import pytest
import torch
import torch.nn.functional as F

from fashionlens.train.losses import batch_hard_triplet, cross_modal_batch_hard, info_nce, supcon


def _norm(x):
    return [[c / math.sqrt(sum(c * c for c in v)) for c in v] for v in x]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _slow_info_nce(a, b, scale, extra_a=(), extra_b=()):
    a, b, extra_a, extra_b = _norm(a), _norm(b), _norm(extra_a), _norm(extra_b)
    n = len(a)
    tot = 0.0
    for i in range(n):
        row = [scale * _dot(a[i], c) for c in b + extra_b]
        col = [scale * _dot(b[i], c) for c in a + extra_a]
        tot += -row[i] + math.log(sum(math.exp(v) for v in row))
        tot += -col[i] + math.log(sum(math.exp(v) for v in col))
    return tot / (2 * n)


def _slow_supcon(z, y, t):
    z = _norm(z)
    losses = []
    for i in range(len(z)):
        others = [j for j in range(len(z)) if j != i]
        pos = [j for j in others if y[j] == y[i]]
        if not pos:
            continue
        denom = math.log(sum(math.exp(_dot(z[i], z[j]) / t) for j in others))
        losses.append(-sum(_dot(z[i], z[p]) / t - denom for p in pos) / len(pos))
    return sum(losses) / len(losses)


def _slow_batch_hard(z, y, m):
    z = _norm(z)
    d = [[1 - _dot(a, b) for b in z] for a in z]
    out = []
    for i in range(len(z)):
        pos = [d[i][j] for j in range(len(z)) if j != i and y[j] == y[i]]
        neg = [d[i][j] for j in range(len(z)) if y[j] != y[i]]
        if pos and neg:
            out.append(max(0.0, max(pos) - min(neg) + m))
    return sum(out) / len(out)


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g), torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 0])


def test_info_nce_matches_reference(batch):
    a, b, _ = batch
    got = info_nce(a, b, math.log(10.0))
    assert got.item() == pytest.approx(_slow_info_nce(a.tolist(), b.tolist(), 10.0), rel=1e-5)


def test_info_nce_with_memory_negatives_matches_reference(batch):
    a, b, _ = batch
    g = torch.Generator().manual_seed(1)
    mem_a, mem_b = torch.randn(4, 5, generator=g), torch.randn(6, 5, generator=g)
    got = info_nce(a, b, math.log(10.0), mem_a, mem_b)
    want = _slow_info_nce(a.tolist(), b.tolist(), 10.0, mem_a.tolist(), mem_b.tolist())
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert got.item() > info_nce(a, b, math.log(10.0)).item()  # more negatives, a harder task


def test_info_nce_temperature_is_clamped(batch):
    a, b, _ = batch
    assert info_nce(a, b, 50.0).item() == pytest.approx(info_nce(a, b, math.log(100.0)).item())


def test_supcon_matches_reference(batch):
    a, _, y = batch
    assert supcon(a, y, 0.2).item() == pytest.approx(_slow_supcon(a.tolist(), y.tolist(), 0.2), rel=1e-5)


def test_batch_hard_matches_reference(batch):
    a, _, y = batch
    assert batch_hard_triplet(a, y, 0.3).item() == pytest.approx(_slow_batch_hard(a.tolist(), y.tolist(), 0.3), rel=1e-5)


def test_cross_modal_batch_hard_zero_when_pairs_are_separated():
    eye = torch.eye(4)
    assert cross_modal_batch_hard(eye, eye, margin=0.5).item() == 0.0
    assert cross_modal_batch_hard(eye, eye.roll(1, 0), margin=0.5).item() > 0.5


def test_losses_fall_when_optimised(batch):
    a, b, y = batch
    a = a.clone().requires_grad_(True)
    opt = torch.optim.SGD([a], lr=0.5)
    first = None
    for _ in range(50):
        loss = info_nce(a, b, math.log(10.0)) + supcon(a, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.7
    assert torch.isfinite(F.normalize(a, dim=-1)).all()
