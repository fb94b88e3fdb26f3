"""One perceptual-alignment run: split, untuned scores, training, tuned scores, run directory
(config.yaml, metrics.json, curves.png, safetensors weights, encoder.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashionlens.errors import InvalidInputError
from fashionlens.perceptual.data import Triplets, load_triplets, split_by_reference
from fashionlens.perceptual.evaluate import evaluate_encoder, view_features
from fashionlens.perceptual.train import PerceptualConfig, fit_head, fit_lora


def split_triplets(triplets: Triplets, cfg: PerceptualConfig) -> tuple[Triplets, Triplets, Triplets]:
    """(train, val, test). "reference": test and val hold out reference images (val from train)."""
    if cfg.split == "column":
        parts = {s: triplets.subset(triplets.split == s) for s in ("train", "val", "test")}
        if not len(parts["test"]) or not len(parts["train"]):
            raise InvalidInputError("split='column' needs rows with split 'train' and 'test'")
        train, test = parts["train"], parts["test"]
        if len(parts["val"]):
            return train, parts["val"], test
    elif cfg.split == "reference":
        train, test = split_by_reference(triplets, cfg.test_size, cfg.seed)
    else:
        raise InvalidInputError(f"unknown split '{cfg.split}' (use 'reference' or 'column')")
    train, val = split_by_reference(train, cfg.val_size, cfg.seed + 1)
    return train, val, test


def _scores(encoder: Any, test: Triplets, cfg: PerceptualConfig) -> dict[str, Any]:
    out = {"clean": evaluate_encoder(encoder, test, seed=cfg.seed, cache_dir=cfg.cache_dir)}
    if cfg.eval_lighting > 0:
        out["lighting"] = evaluate_encoder(encoder, test, lighting=cfg.eval_lighting, seed=cfg.seed + 7,
                                           cache_dir=cfg.cache_dir)
    return out


def train_perceptual(cfg: PerceptualConfig, triplets: Triplets | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Train, evaluate before/after on the held-out split and write the run directory.

    Returns the metrics dict (also saved as metrics.json); `create("run:" + cfg.out)` loads the model.
    """
    import yaml

    from fashionlens.encoders.perceptual import PerceptualEncoder
    from fashionlens.encoders.registry import create
    from fashionlens.utils import atomic_write, write_json

    if cfg.mode not in ("mlp", "lora"):
        raise InvalidInputError(f"unknown mode '{cfg.mode}' (use 'mlp' or 'lora')")
    if cfg.mode == "lora" and len(cfg.encoders) != 1:
        raise InvalidInputError("LoRA trains one backbone; give exactly one encoder (ensembles: mode 'mlp')")
    triplets = triplets if triplets is not None else load_triplets(cfg.triplets)
    train, val, test = split_triplets(triplets, cfg)
    bases = [create(n, **cfg.encoder_kwargs) for n in cfg.encoders]
    before = _scores(bases if len(bases) > 1 else bases[0], test, cfg)

    images = sorted(set(train.images) | set(val.images))
    tr_i, va_i = train.index(images), val.index(images)
    head = None
    if cfg.mode == "mlp":
        feats = view_features(bases, images, cfg.n_views, cfg.aug_strength, cfg.seed, cfg.cache_dir)
        head, fit = fit_head(feats, tr_i, train.p_left, va_i, val.p_left, cfg, progress)
    else:
        fit = fit_lora(bases[0], images, tr_i, train.p_left, va_i, val.p_left, cfg, progress)
    enc_cfg = {"base": cfg.encoders[0] if len(cfg.encoders) == 1 else list(cfg.encoders), "base_kwargs": cfg.encoder_kwargs, "mode": cfg.mode,
               "hidden": cfg.hidden, "dropout": cfg.dropout, "triplets_source": triplets.source,
               "best_val_2afc": fit.best_score}
    encoder = PerceptualEncoder(bases, head, enc_cfg, name=f"run:{cfg.out}")
    out = Path(cfg.out)
    encoder.save(out)
    after = _scores(encoder, test, cfg)

    metrics = {
        "source": triplets.source, "mode": cfg.mode, "encoders": list(cfg.encoders),
        "n_train": len(train), "n_val": len(val), "n_test": len(test),
        "human_ceiling": before["clean"]["human_ceiling"], "before": before, "after": after,
        "best_epoch": fit.best_epoch, "best_val_2afc": fit.best_score, "seconds": fit.seconds,
        "history": fit.history,
    }
    write_json(out / "metrics.json", metrics)
    with atomic_write(out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    plot_curves(fit.history, out / "curves.png")
    return metrics


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Training loss and validation 2AFC per epoch (epoch -1 = untuned)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashionlens.utils import save_figure

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(ep[1:], [h["train_loss"] for h in history[1:]], marker=".")
    a.set(xlabel="epoch", ylabel="train loss")
    b.plot(ep, [h["val_2afc"] for h in history], marker=".", color="C1")
    b.set(xlabel="epoch", ylabel="val 2AFC (vote-weighted)")
    save_figure(fig, path, dpi=90)


def before_after_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a before/after table (one per condition) from a metrics dict."""
    rows = []
    for cond in metrics["before"]:
        b, a = metrics["before"][cond], metrics["after"][cond]
        rows.append({"condition": cond, "untuned": b["2afc"], "tuned": a["2afc"],
                     "untuned_ci95": b["ci95"], "tuned_ci95": a["ci95"], "n": a["n"],
                     "human_ceiling": a["human_ceiling"], "source": metrics["source"]})
    return rows
