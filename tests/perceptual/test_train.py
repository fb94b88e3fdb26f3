"""Perceptual training on synthetic triplets whose true distance is known (colour patches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashionlens.perceptual.evaluate import Triplets, cosine_distances, two_afc_scores


def _colour_triplets(colours: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (ref, left, right) rows; the left vote share says which is nearer in RGB."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(colours), (n, 3))
    idx = idx[(idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2])]
    d_l = np.linalg.norm(colours[idx[:, 0]] - colours[idx[:, 1]], axis=1)
    d_r = np.linalg.norm(colours[idx[:, 0]] - colours[idx[:, 2]], axis=1)
    return idx, (d_l < d_r).astype(float)


def test_mlp_head_learns_the_true_distance_from_nuisance_dominated_features():
    from fashionlens.perceptual.train import PerceptualConfig, fit_head

    rng = np.random.default_rng(0)
    n_items, n_views = 300, 8
    # colour patches on the colour wheel: the true distance is the hue angle
    hue = rng.random(n_items) * 2 * np.pi
    wheel = np.stack([np.cos(hue), np.sin(hue)], axis=1)
    # features: the hue buried under a strong nuisance that changes with every view (lighting,
    # background ...), randomly rotated into 32 dims
    rot = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    views = np.stack([np.hstack([wheel, rng.normal(size=(n_items, 30))]) @ rot for _ in range(n_views)],
                     axis=1).astype(np.float32)

    def trip(lo: int, hi: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        idx, p = _colour_triplets(wheel[lo:hi], n, seed)
        return idx + lo, p

    train_idx, train_p = trip(0, 150, 6000, 1)
    val_idx, val_p = trip(150, 200, 800, 2)
    test_idx, test_p = trip(200, 300, 1500, 3)  # items never seen in training
    untuned = two_afc_scores(*cosine_distances(views[:, 0], test_idx), test_p).mean()
    assert untuned < 0.6  # near chance: the nuisance dominates cosine distance

    cfg = PerceptualConfig(hidden=128, epochs=30, lr=1e-2, batch_size=512, patience=8, dropout=0.0)
    head, fit = fit_head(views, train_idx, train_p, val_idx, val_p, cfg)
    with torch.no_grad():
        z = head(torch.as_tensor(views[:, 0])).numpy()
    tuned = two_afc_scores(*cosine_distances(z, test_idx), test_p).mean()
    assert tuned >= 0.95, (untuned, tuned)
    assert fit.best_score == max(h["val_2afc"] for h in fit.history)  # early stopping kept the best


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
    from fashionlens.perceptual.run import train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    cfg = PerceptualConfig(
        out=str(tmp_path / "lora"), encoders=["timm"],
        encoder_kwargs={**tiny_vit_kwargs(), "device": "cpu"}, mode="lora", lora_r=16, lora_alpha=32,
        lora_dropout=0.0, lr=5e-3, epochs=6, batch_size=128, patience=6, aug_strength=0.5,
        eval_lighting=0, split="reference", test_size=0.25, val_size=0.2)
    m = train_perceptual(cfg, patch_triplets)
    before, after = m["before"]["clean"]["2afc"], m["after"]["clean"]["2afc"]
    assert after > before + 0.03, (before, after)
    for f in ("config.yaml", "metrics.json", "curves.png", "encoder.json", "backbone.safetensors"):
        assert (tmp_path / "lora" / f).is_file()
    enc = create(f"run:{tmp_path / 'lora'}")
    assert enc.config["mode"] == "lora" and enc.head is None
    assert enc.inputs == ["rgb"] and enc.pool_views == 1  # what the adapters trained on
    # the reloaded (merged) backbone reproduces the trained model's distances
    from fashionlens.perceptual.evaluate import evaluate_encoder
    from fashionlens.perceptual.run import split_triplets

    _, _, test = split_triplets(patch_triplets, cfg)
    assert evaluate_encoder(enc, test, n_boot=0)["2afc"] == pytest.approx(after, abs=1e-6)


def test_mlp_run_dir_loads_through_create_and_cli_evaluates(patch_triplets, tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from fashionlens.cli.perceptual import app
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import save_triplets

    base = tmp_path / "base"
    trip_csv = tmp_path / "t.csv"
    save_triplets(patch_triplets, trip_csv)
    cfg = {"triplets": str(trip_csv), "out": str(base), "encoders": ["timm"],
           "encoder_kwargs": {**tiny_vit_kwargs(), "device": "cpu"}, "mode": "mlp", "hidden": 64, "epochs": 15,
           "lr": 3e-3, "n_views": 2, "eval_lighting": 1.5, "loss": "logistic"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--eval-split", "reference", "--json"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output)
    assert metrics["after"]["clean"]["2afc"] > metrics["before"]["clean"]["2afc"]
    assert set(metrics["after"]) == {"clean", "lighting", "gap"} and metrics["split"] == "reference"
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--eval-split", "reference"])
    assert res.exit_code == 0 and "plain MLP" in res.output and "(proxy)" in res.output, res.output
    assert "synthetic proxy" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--eval-split", "random"])
    assert res.exit_code == 2 and "--eval-split" in res.output
    saved = yaml.safe_load((base / "config.yaml").read_text())
    assert saved["loss"] == "logistic" and saved["hidden"] == 64
    enc = create(f"run:{base}")
    saved_enc = json.loads((base / "encoder.json").read_text())
    assert saved_enc["kind"] == "perceptual" and saved_enc["base"] == "timm"
    assert "mlp alignment" in enc.card().source
    v = enc.encode_images([patch_triplets.ref[0], patch_triplets.left[0]])
    assert v.shape == (2, enc.dim) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)

    res = runner.invoke(app, ["evaluate", "--encoder", f"run:{base}", "--triplets", str(trip_csv), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {"2afc", "ci95", "n"} <= set(out) and out["n"] == len(patch_triplets)
    res = runner.invoke(app, ["evaluate", "--encoder", "no-such-encoder", "--triplets", str(trip_csv)])
    assert res.exit_code == 2 and "unknown encoder" in res.output


def test_ensemble_concatenates_backbones_and_reloads(patch_triplets, tmp_path):
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import view_features
    from fashionlens.perceptual.run import train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    name = "timm"
    cfg = PerceptualConfig(out=str(tmp_path / "ens"), encoders=[name, name],
                           encoder_kwargs={**tiny_vit_kwargs(), "device": "cpu"}, hidden=32, epochs=2,
                           n_views=1, eval_lighting=0)
    m = train_perceptual(cfg, patch_triplets)
    enc = create(f"run:{tmp_path / 'ens'}")
    assert enc.dim == 2 * 2 * 32 and len(enc.bases) == 2 and m["encoders"] == [name, name]  # bases x inputs x dim
    single = create(name, **tiny_vit_kwargs())
    f = view_features([single, single], patch_triplets.images[:3], n_views=2)
    assert f.shape == (3, 2, 64) and np.allclose(f[..., :32], f[..., 32:])
    with pytest.raises(ValueError, match="exactly one encoder"):
        train_perceptual(PerceptualConfig(out=str(tmp_path / "x"), encoders=[name, name], mode="lora"),
                         patch_triplets)


def test_config_yaml_errors_and_cli_mines_proxy_triplets(tiny_kaggle, tmp_path):
    from typer.testing import CliRunner

    from fashionlens.cli.perceptual import app
    from fashionlens.perceptual.evaluate import load_triplets
    from fashionlens.perceptual.train import PerceptualConfig

    (tmp_path / "c.yaml").write_text("triplets: t.csv\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"c\.yaml: unknown PerceptualConfig key.*learning_rate.*known: .*\blr\b"):
        PerceptualConfig.from_yaml(str(tmp_path / "c.yaml"))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tmp_path / "c.yaml")])
    assert res.exit_code == 2 and "learning_rate" in res.output
    out = tmp_path / "proxy.csv"
    res = runner.invoke(app, ["triplets", str(tiny_kaggle), "--out", str(out), "--n", "20"])
    assert res.exit_code == 0 and "proxy" in res.output, res.output
    t = load_triplets(out)
    assert len(t) == 20 and t.source == "proxy" and all(Path(p).is_file() for p in t.images)


def _triplet_rows(frame) -> set[tuple]:
    return set(zip(frame["ref_path"], frame["left_path"], frame["right_path"], strict=True))


def test_default_trains_on_every_triplet_with_a_disjoint_validation(patch_triplets, tmp_path):
    import pandas as pd

    from fashionlens.perceptual.run import train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    cfg = PerceptualConfig(out=str(tmp_path / "all"), encoders=["timm"],
                           encoder_kwargs={**tiny_vit_kwargs(), "device": "cpu"}, hidden=32, epochs=2, n_views=1)
    m = train_perceptual(cfg, patch_triplets)
    roles = pd.read_csv(tmp_path / "all" / "split.csv")
    assert set(roles["role"]) == {"train", "val"} and len(roles) == len(patch_triplets)  # no test split
    train, val = roles[roles["role"] == "train"], roles[roles["role"] == "val"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (len(train), len(val), 0) and "after" not in m
    # validation holds out reference images: none of its triplets (nor references) ever trained
    assert not set(val["ref_path"]) & set(train["ref_path"])
    assert not _triplet_rows(val) & _triplet_rows(train)
    assert _triplet_rows(train) | _triplet_rows(val) == set(zip(patch_triplets.ref, patch_triplets.left,
                                                                patch_triplets.right, strict=True))


def test_eval_split_scores_model_untuned_and_plain_mlp_with_a_paired_relighting_gap(patch_triplets, tmp_path):
    import pandas as pd

    from fashionlens.perceptual.run import before_after_rows, train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    cfg = PerceptualConfig(out=str(tmp_path / "ev"), encoders=["timm"], split="reference", test_size=0.25,
                           encoder_kwargs={**tiny_vit_kwargs(), "device": "cpu"}, hidden=32, epochs=2, n_views=2,
                           eval_lighting=1.0, pool_views=2)
    m = train_perceptual(cfg, patch_triplets)
    roles = pd.read_csv(tmp_path / "ev" / "split.csv")
    test = roles[roles["role"] == "test"]
    assert len(test) == m["n_test"] > 0 and not set(test["ref_path"]) & set(roles[roles["role"] != "test"]["ref_path"])
    for model in ("before", "plain_mlp", "after"):
        r = m[model]
        assert set(r) == {"clean", "lighting", "gap"} and r["clean"]["n"] == m["n_test"]
        assert r["gap"]["2afc"] == pytest.approx(r["clean"]["2afc"] - r["lighting"]["2afc"], abs=1e-9)
        assert r["gap"]["ci95"][0] <= r["gap"]["2afc"] <= r["gap"]["ci95"][1]
    assert "proxy" in m["after"]["lighting"]["relighting"]
    assert m["plain_mlp"]["clean"]["2afc"] != m["before"]["clean"]["2afc"]  # a trained baseline, not the untuned one
    # the saved run (grey-world input, pooled over flips) reloads and scores the same
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import evaluate_encoder
    from fashionlens.perceptual.run import split_triplets

    enc = create(f"run:{tmp_path / 'ev'}")
    assert enc.inputs == ["rgb", "grey_world"] and enc.pool_views == 2
    test_t = split_triplets(patch_triplets, cfg)[2]
    assert evaluate_encoder(enc, test_t, n_boot=0)["2afc"] == pytest.approx(m["after"]["clean"]["2afc"], abs=1e-6)
    rows = before_after_rows(m)
    assert [r["condition"] for r in rows] == ["as rendered", "relit (proxy)", "gap (rendered - relit)"]
    assert rows[0]["plain MLP"].startswith(f"{m['plain_mlp']['clean']['2afc']:.3f} [")


def test_view_pooling_makes_features_blind_to_flips_and_grey_world_to_colour_casts(tmp_path):
    from fashionlens.encoders import lighting as L
    from fashionlens.encoders.perceptual import PerceptualEncoder
    from fashionlens.encoders.registry import create

    rng = np.random.default_rng(0)
    img = np.clip(rng.random((32, 32, 3)) * 0.5 + 0.1, 0, 1)
    flipped, warm = L.to_pil(L.dihedral(img, 5)), L.to_pil(L.colour_temperature(img, 3500))
    base = create("timm", **tiny_vit_kwargs())
    pooled = PerceptualEncoder([base], None, {"base": "timm", "pool_views": 8})
    a, b = pooled.features([L.to_pil(img), flipped])
    assert a == pytest.approx(b, abs=1e-5)
    plain = PerceptualEncoder([base], None, {"base": "timm"})
    a, b = plain.features([L.to_pil(img), flipped])
    assert np.abs(a - b).max() > 1e-3  # without pooling a flip does change the features
    gw = PerceptualEncoder([base], None, {"base": "timm", "inputs": ["rgb", "grey_world"]})
    a, b = gw.features([L.to_pil(img), warm])
    assert gw.dim == 2 * base.dim and a.shape == (gw.dim,)
    d_rgb, d_gw = np.abs(a[:32] - b[:32]).max(), np.abs(a[32:] - b[32:]).max()
    assert d_gw < 0.1 * d_rgb, (d_gw, d_rgb)  # only 8-bit rounding is left in the grey-world half
    with pytest.raises(ValueError, match="unknown input"):
        PerceptualEncoder([base], None, {"base": "timm", "inputs": ["hsv"]})


def test_training_views_come_from_the_chosen_family_and_never_from_the_test_proxy(patch_triplets, tmp_path):
    from fashionlens.encoders.registry import create
    from fashionlens.errors import InvalidInputError
    from fashionlens.perceptual.evaluate import view_features
    from fashionlens.perceptual.run import train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    base = create("timm", **tiny_vit_kwargs())
    images = patch_triplets.images[:6]
    jit = view_features(base, images, 3, 1.0, 0, tmp_path, "colour_jitter")
    photo = view_features(base, images, 3, 1.0, 0, tmp_path, "photometric")
    assert jit[:, 0] == pytest.approx(photo[:, 0])  # view 0 is the photo as is in both
    assert np.abs(jit[:, 1:] - jit[:, :1]).max() > 1e-3 and np.abs(jit[:, 1:] - photo[:, 1:]).max() > 1e-3
    assert len(list(tmp_path.glob("views-*.npy"))) == 2  # the families do not share a cache entry
    cfg = PerceptualConfig(out=str(tmp_path / "r"), encoders=["timm"], encoder_kwargs=tiny_vit_kwargs(),
                           aug_family="relight", n_views=2)
    with pytest.raises(InvalidInputError, match="aug_family 'relight'"):
        train_perceptual(cfg, patch_triplets)


def test_the_view_feature_pass_reports_progress_off_a_terminal(patch_triplets, capsys, monkeypatch):
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import view_features

    monkeypatch.delenv("FASHIONLENS_PROGRESS", raising=False)
    base = create("timm", **tiny_vit_kwargs())
    images = patch_triplets.images[:4]
    view_features(base, images, 2, progress=True)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("embedding 4 images x 2 views")]
    assert lines and "8/8 (100%)" in lines[-1]
    view_features(base, images, 2)  # progress off by default: nothing printed
    assert "views" not in capsys.readouterr().err
