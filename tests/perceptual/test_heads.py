"""Perceptual head kinds (mlp / lowrank / diagonal) and seed-averaged heads: what each changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fashionlens.perceptual.evaluate import cosine_distances, two_afc_scores


def _hue_task(rotate: bool, n_views: int = 4, dim: int = 24, seed: int = 0):
    """Hue-wheel items under a per-view nuisance in `dim` - 2 other dims (rotated into all dims or
    axis-aligned); triplet votes follow the hue. Returns features and (train, val, test) triplets
    over disjoint items."""
    rng = np.random.default_rng(seed)
    n = 240
    hue = rng.random(n) * 2 * np.pi
    wheel = np.stack([np.cos(hue), np.sin(hue)], axis=1)
    rot = np.linalg.qr(rng.normal(size=(dim, dim)))[0] if rotate else np.eye(dim)
    views = np.stack([np.hstack([wheel, 1.5 * rng.normal(size=(n, dim - 2))]) @ rot for _ in range(n_views)],
                     axis=1).astype(np.float32)

    def trip(lo: int, hi: int, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(s)
        idx = r.integers(lo, hi, (k, 3))
        idx = idx[(idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2])]
        d = [np.linalg.norm(wheel[idx[:, 0]] - wheel[idx[:, j]], axis=1) for j in (1, 2)]
        return idx, (d[0] < d[1]).astype(float)

    return views, trip(0, 120, 5000, 1), trip(120, 160, 800, 2), trip(160, 240, 1500, 3)


def _test_2afc(head: torch.nn.Module | None, views: np.ndarray, test: tuple[np.ndarray, np.ndarray]) -> float:
    x = views[:, 0]
    if head is not None:
        with torch.no_grad():
            x = head(torch.as_tensor(x)).numpy()
    return float(two_afc_scores(*cosine_distances(x, test[0]), test[1]).mean())


def test_lowrank_head_starts_at_the_untuned_cosine_and_learns_a_narrow_metric():
    from fashionlens.encoders.nn import LowRankHead
    from fashionlens.perceptual.train import PerceptualConfig, fit_head

    views, train, val, test = _hue_task(rotate=True)
    # initialised from the training features' singular vectors: at full rank, cosines are unchanged
    start = LowRankHead(24, 24)
    start.init_from(torch.as_tensor(views[:120].reshape(-1, 24)))
    x = torch.as_tensor(views[:, 0])
    assert torch.allclose(F.cosine_similarity(start(x)[:1], start(x)), F.cosine_similarity(x[:1], x), atol=1e-4)

    cfg = PerceptualConfig(head="lowrank", rank=4, epochs=30, lr=1e-2, batch_size=512, patience=8)
    head, fit = fit_head(views, *train, *val, cfg)
    assert head(x).shape == (240, 4) and sum(p.numel() for p in head.parameters()) == 4 * 24
    untuned, tuned = _test_2afc(None, views, test), _test_2afc(head, views, test)
    assert untuned < 0.65 and tuned >= 0.9, (untuned, tuned)  # a rank-4 projection drops the nuisance


def test_diagonal_head_reweights_channels_and_cannot_undo_a_rotation():
    from fashionlens.perceptual.train import PerceptualConfig, fit_head

    cfg = PerceptualConfig(head="diagonal", epochs=30, lr=3e-2, batch_size=512, patience=8)
    scores = {}
    for rotate in (False, True):
        views, train, val, test = _hue_task(rotate=rotate)
        head, _ = fit_head(views, *train, *val, cfg)
        scores[rotate] = (_test_2afc(None, views, test), _test_2afc(head, views, test))
        assert [p.shape for p in head.parameters()] == [torch.Size([24])]
    # nuisance on its own axes: per-channel weights suppress it; rotated into every channel: they cannot
    assert scores[False][1] >= 0.9 and scores[False][1] > scores[False][0] + 0.2, scores
    assert scores[True][1] < scores[False][1] - 0.1, scores


def test_averaged_heads_are_fitted_with_their_own_seeds_and_average_the_cosines():
    from fashionlens.encoders.nn import HeadAverage
    from fashionlens.perceptual.train import PerceptualConfig, fit_head

    views, train, val, test = _hue_task(rotate=True)
    cfg = PerceptualConfig(head="lowrank", rank=4, n_heads=3, epochs=6, lr=1e-2, batch_size=512)
    avg, fit = fit_head(views, *train, *val, cfg)
    assert isinstance(avg, HeadAverage) and len(avg.heads) == 3 and len(fit.extra["head_val_2afc"]) == 3
    w = [h.proj.weight for h in avg.heads]
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])  # different seeds, different fits
    x = torch.as_tensor(views[:5, 0])
    with torch.no_grad():
        z = avg(x)
        mean_cos = torch.stack([F.cosine_similarity(h(x)[:1], h(x)) for h in avg.heads]).mean(0)
    assert z.shape == (5, 12) and torch.allclose((z[:1] * z).sum(-1), mean_cos, atol=1e-5)
    # the first head is the single-head fit with the same seed
    one, _ = fit_head(views, *train, *val, PerceptualConfig(head="lowrank", rank=4, epochs=6, lr=1e-2, batch_size=512))
    assert torch.allclose(one.proj.weight, w[0])


def test_head_options_save_reload_and_score_identically(tmp_path):
    from PIL import Image

    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import Triplets
    from fashionlens.perceptual.run import train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    rng = np.random.default_rng(0)
    paths = []
    for i, c in enumerate(rng.random((16, 3))):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray((np.ones((32, 32, 3)) * c * 255).astype(np.uint8)).save(paths[-1])
    idx = rng.integers(0, 16, (300, 3))
    idx = idx[(idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2])]
    p = rng.integers(0, 2, len(idx)).astype(float)
    trip = Triplets(*([paths[i] for i in idx[:, j]] for j in range(3)), p, 1 - p)
    kw = {"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1,
          "num_heads": 2, "seed": 0, "device": "cpu"}
    for extra, width in (({"head": "lowrank", "rank": 8, "n_heads": 2}, 16), ({"head": "diagonal"}, 32)):
        out = tmp_path / extra["head"]
        cfg = PerceptualConfig(out=str(out), encoders=["timm"], encoder_kwargs=kw, epochs=2, n_views=1,
                               inputs=["rgb"], pool_views=1, eval_lighting=0, **extra)
        train_perceptual(cfg, trip)
        enc = create(f"run:{out}")
        assert enc.dim == width and f"{extra['head']} head" in enc.card().pooling
        v = enc.encode_images(paths[:4])
        assert v.shape == (4, width) and np.allclose(v, create(f"run:{out}").encode_images(paths[:4]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown perceptual head 'wide'"):
        train_perceptual(PerceptualConfig(out=str(tmp_path / "x"), encoders=["timm"], encoder_kwargs=kw,
                                          head="wide", epochs=1, n_views=1, eval_lighting=0), trip)
