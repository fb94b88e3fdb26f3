"""Perceptual training on synthetic triplets whose true distance is known (colour patches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.tasks.perceptual import Triplets, cosine_distances, two_afc_scores


def _colour_triplets(colours: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (ref, left, right) rows; the left vote share says which is nearer in RGB."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(colours), (n, 3))
    idx = idx[(idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2])]
    d_l = np.linalg.norm(colours[idx[:, 0]] - colours[idx[:, 1]], axis=1)
    d_r = np.linalg.norm(colours[idx[:, 0]] - colours[idx[:, 2]], axis=1)
    return idx, (d_l < d_r).astype(float)


def test_mlp_head_learns_the_true_distance_from_nuisance_dominated_features():
    from fashionlens.train.perceptual import PerceptualConfig, fit_head

    rng = np.random.default_rng(0)
    n_items, n_views = 300, 3
    colours = rng.random((n_items, 3))
    # features: the colour (the true similarity) buried under a strong per-item nuisance (texture,
    # background ...) and per-view lighting noise, randomly rotated into 32 dims
    nuisance = rng.normal(size=(n_items, 29)) * 2.0
    rot = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    views = np.stack([np.hstack([colours + rng.normal(size=colours.shape) * 0.03, nuisance]) @ rot
                      for _ in range(n_views)], axis=1).astype(np.float32)
    train_idx, train_p = _colour_triplets(colours[:200], 6000, 1)
    val_idx, val_p = _colour_triplets(colours[:200], 800, 2)
    test_idx, test_p = _colour_triplets(colours[200:], 1500, 3)
    test_idx = test_idx + 200  # unseen items
    untuned = two_afc_scores(*cosine_distances(views[:, 0], test_idx), test_p).mean()
    assert untuned < 0.62  # near chance: the nuisance dominates cosine distance

    cfg = PerceptualConfig(hidden=128, epochs=40, lr=3e-3, batch_size=256, patience=8, dropout=0.0)
    head, fit = fit_head(views, train_idx, train_p, val_idx, val_p, cfg)
    with torch.no_grad():
        z = head(torch.as_tensor(views[:, 0])).numpy()
    tuned = two_afc_scores(*cosine_distances(z, test_idx), test_p).mean()
    assert tuned >= 0.95, (untuned, tuned)
    assert fit.best_val_2afc >= fit.history[0]["val_2afc"]  # early stopping kept the best state


def _patch(colour: np.ndarray, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A colour patch with a random texture (the nuisance)."""
    base = np.clip(colour * 255, 0, 255)
    noise = rng.normal(0, 25, (size, size, 1)) * rng.random(3)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def patch_triplets(tmp_path_factory):
    root = tmp_path_factory.mktemp("patches")
    rng = np.random.default_rng(0)
    colours = rng.random((48, 3))
    paths = []
    for i, c in enumerate(colours):
        paths.append(str(root / f"{i}.png"))
        _patch(c, rng).save(paths[-1])
    idx, p = _colour_triplets(colours, 1400, 5)
    t = Triplets([paths[i] for i in idx[:, 0]], [paths[i] for i in idx[:, 1]], [paths[i] for i in idx[:, 2]],
                 p, 1 - p)
    return t


def tiny_vit_kwargs() -> dict:
    return {"arch": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2,
            "num_heads": 2, "seed": 0}


def test_lora_on_tiny_vit_raises_2afc_and_reloads(patch_triplets, tmp_path):
    from fashionlens.encoders.registry import create
    from fashionlens.tasks.perceptual_run import train_perceptual
    from fashionlens.train.perceptual import PerceptualConfig

    cfg = PerceptualConfig(
        out=str(tmp_path / "lora"), encoders=["fashionlens.encoders.perceptual:timm_encoder"],
        encoder_kwargs={**tiny_vit_kwargs(), "device": "cpu"}, mode="lora", lora_r=16, lora_alpha=32,
        lora_dropout=0.0, lr=5e-3, epochs=6, batch_size=128, patience=6, aug_strength=0.5,
        eval_lighting=0, test_size=0.25, val_size=0.2)
    m = train_perceptual(cfg, patch_triplets)
    before, after = m["before"]["clean"]["2afc"], m["after"]["clean"]["2afc"]
    assert after > before + 0.03, (before, after)
    for f in ("config.yaml", "metrics.json", "curves.png", "encoder.json", "backbone.safetensors"):
        assert (tmp_path / "lora" / f).is_file()
    enc = create(f"run:{tmp_path / 'lora'}")
    assert enc.config["mode"] == "lora" and enc.head is None
    # the reloaded (merged) backbone reproduces the trained model's distances
    from fashionlens.tasks.perceptual import evaluate_encoder
    from fashionlens.tasks.perceptual_run import split_triplets

    _, _, test = split_triplets(patch_triplets, cfg)
    assert evaluate_encoder(enc, test, n_boot=0)["2afc"] == pytest.approx(after, abs=1e-6)


def test_mlp_run_dir_loads_through_create_and_cli_evaluates(patch_triplets, tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from fashionlens.cli.perceptual import app
    from fashionlens.encoders.registry import create
    from fashionlens.tasks.perceptual import save_triplets

    base = tmp_path / "base"
    trip_csv = tmp_path / "t.csv"
    save_triplets(patch_triplets, trip_csv)
    cfg = {"triplets": str(trip_csv), "out": str(base), "encoders": ["fashionlens.encoders.perceptual:timm_encoder"],
           "encoder_kwargs": {**tiny_vit_kwargs(), "device": "cpu"}, "mode": "mlp", "hidden": 64, "epochs": 15,
           "lr": 3e-3, "n_views": 2, "eval_lighting": 1.5, "loss": "logistic"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    assert metrics["after"]["clean"]["2afc"] > metrics["before"]["clean"]["2afc"]
    assert set(metrics["after"]) == {"clean", "lighting"}
    saved = yaml.safe_load((base / "config.yaml").read_text())
    assert saved["loss"] == "logistic" and saved["hidden"] == 64
    enc = create(f"run:{base}")
    assert json.loads((base / "encoder.json").read_text())["kind"] == "perceptual"
    v = enc.encode_images([patch_triplets.ref[0], patch_triplets.left[0]])
    assert v.shape == (2, enc.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)

    res = runner.invoke(app, ["evaluate", "--encoder", f"run:{base}", "--triplets", str(trip_csv), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {"2afc", "ci95", "n"} <= set(out) and out["n"] == len(patch_triplets)
    res = runner.invoke(app, ["evaluate", "--encoder", "no-such-encoder", "--triplets", str(trip_csv)])
    assert res.exit_code == 2 and "unknown encoder" in res.output
