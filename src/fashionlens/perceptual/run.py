"""One perceptual-alignment run: split, untuned scores, training, tuned scores, run directory
(config.yaml, metrics.json, curves.png, safetensors weights, encoder.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashionlens.errors import InvalidInputError
from fashionlens.perceptual.data import Triplets, load_triplets, split_by_reference
from fashionlens.perceptual.evaluate import (
    cosine_distances,
    human_ceiling,
    summarize,
    two_afc_scores,
    view_features,
)
from fashionlens.perceptual.train import PerceptualConfig, fit_head, fit_lora


def split_triplets(triplets: Triplets, cfg: PerceptualConfig) -> tuple[Triplets, Triplets, Triplets | None]:
    """(train, val, test). Validation (early stopping only) holds out `val_size` of the reference
    images of what is not test; test only when asked: split "reference" holds out `test_size` of
    the reference images, "column" uses the CSV's split column, "none" (default) has no test, so the
    saved model trains on every triplet outside validation."""
    test: Triplets | None = None
    if cfg.split == "column":
        parts = {s: triplets.subset(triplets.split == s) for s in ("train", "val", "test")}
        if not len(parts["test"]) or not len(parts["train"]):
            raise InvalidInputError("split='column' needs rows with split 'train' and 'test' "
                                    f"(found {', '.join(sorted(set(triplets.split)))})")
        train, test = parts["train"], parts["test"]
        if len(parts["val"]):
            return train, parts["val"], test
    elif cfg.split == "reference":
        train, test = split_by_reference(triplets, cfg.test_size, cfg.seed)
    elif cfg.split == "none":
        train = triplets
    else:
        raise InvalidInputError(f"unknown split '{cfg.split}' (use 'none', 'reference' or 'column')")
    train, val = split_by_reference(train, cfg.val_size, cfg.seed + 1)
    return train, val, test


def _scores(encoder: Any, test: Triplets, cfg: PerceptualConfig) -> dict[str, Any]:
    """2AFC as rendered and, with `eval_lighting`, under the relighting proxy, plus the paired gap;
    the CIs resample held-out reference images (all their triplets together), not single triplets."""
    images, idx = test.images, test.index()
    clean = view_features(encoder, images, 1, cache_dir=cfg.cache_dir)[:, 0]
    s_clean = two_afc_scores(*cosine_distances(clean, idx), test.p_left)
    ceiling = human_ceiling(test.p_left)
    out = {"clean": {**summarize(s_clean, seed=cfg.seed, groups=test.ref), "human_ceiling": ceiling, "source": test.source}}
    if cfg.eval_lighting > 0:
        lit = view_features(encoder, images, 2, cfg.eval_lighting, cfg.seed + 7, cfg.cache_dir, "relight")[:, 1]
        s_lit = two_afc_scores(*cosine_distances(lit, idx), test.p_left)
        out["lighting"] = {**summarize(s_lit, seed=cfg.seed, groups=test.ref), "human_ceiling": ceiling, "source": test.source,
                           "relighting": f"synthetic proxy: lighting.relight, strength {cfg.eval_lighting:g}"}
        out["gap"] = summarize(s_clean - s_lit, seed=cfg.seed, groups=test.ref)  # paired over the same triplets
    return out


class _HeadInput:
    """What a head sees: an untuned PerceptualEncoder's `features` (inputs, pooling, bases side by
    side, each part unit norm), in the shape `view_features` embeds with."""

    def __init__(self, encoder: Any):
        self.encoder, self.dim = encoder, encoder.in_dim

    def fingerprint(self) -> str:
        return f"head-input|{self.encoder.fingerprint()}"

    def encode_images(self, images: list[Any]) -> Any:
        return self.encoder.features(images)


def _head_encoder(bases: list[Any], images: list[str], train: Triplets, val: Triplets, cfg: PerceptualConfig,
                  progress: bool) -> tuple[Any, Any]:
    """Fit the MLP head on cached base features of `images` (view 0 as rendered, the others jitter)."""
    from fashionlens.encoders.perceptual import PerceptualEncoder

    feats = view_features(_HeadInput(PerceptualEncoder(bases, None, _encoder_config(cfg, "human"))), images,
                          cfg.n_views, cfg.aug_strength, cfg.seed, cfg.cache_dir, cfg.aug_family, progress)
    return fit_head(feats, train.index(images), train.p_left, val.index(images), val.p_left, cfg, progress)


def _encoder_config(cfg: PerceptualConfig, source: str, best_val: float = float("nan")) -> dict[str, Any]:
    return {"base": cfg.encoders[0] if len(cfg.encoders) == 1 else list(cfg.encoders),
            "base_kwargs": cfg.encoder_kwargs, "mode": cfg.mode, "head": cfg.head, "hidden": cfg.hidden, "dropout": cfg.dropout,
            "rank": cfg.rank, "n_heads": cfg.n_heads,
            "inputs": list(cfg.inputs), "pool_views": cfg.pool_views, "triplets_source": source,
            "best_val_2afc": best_val}


def train_perceptual(cfg: PerceptualConfig, triplets: Triplets | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """Train on every triplet outside validation (early stopping only) and write the run
    directory; with an evaluation split (`cfg.split` "reference" or "column") also score the model,
    the untuned encoder and a plain MLP (one view, no jitter, RGB input) on the held-out triplets.

    Returns the metrics dict (also saved as metrics.json); `create("run:" + cfg.out)` loads the
    model, and split.csv in the run says which triplets trained, validated and tested.
    """
    import dataclasses

    import yaml

    from fashionlens.encoders.perceptual import PerceptualEncoder
    from fashionlens.encoders.registry import create
    from fashionlens.utils import atomic_write, write_json

    if cfg.mode not in ("mlp", "lora"):
        raise InvalidInputError(f"unknown mode '{cfg.mode}' (use 'mlp' or 'lora')")
    if cfg.aug_family not in ("photometric", "colour_jitter"):  # "relight" would train on the test proxy
        raise InvalidInputError(f"unknown aug_family '{cfg.aug_family}' (use 'photometric' or 'colour_jitter')")
    if cfg.mode == "mlp":  # a bad head kind fails before minutes of feature passes
        from fashionlens.encoders.nn import check_head

        check_head(cfg.head, cfg.rank, cfg.n_heads)
    if cfg.mode == "lora" and len(cfg.encoders) != 1:
        raise InvalidInputError("LoRA trains one backbone; give exactly one encoder (ensembles: mode 'mlp')")
    if cfg.mode == "lora":  # the adapters learn from the photos themselves: no extra inputs, no pooling
        cfg = dataclasses.replace(cfg, inputs=["rgb"], pool_views=1)
    triplets = triplets if triplets is not None else load_triplets(cfg.triplets)
    train, val, test = split_triplets(triplets, cfg)
    bases = [create(n, **cfg.encoder_kwargs) for n in cfg.encoders]
    plain_cfg = dataclasses.replace(cfg, inputs=["rgb"], pool_views=1)
    before = _scores(bases if len(bases) > 1 else bases[0], test, plain_cfg) if test is not None else None

    images = sorted(set(train.images) | set(val.images))
    head = None
    if cfg.mode == "mlp":
        head, fit = _head_encoder(bases, images, train, val, cfg, progress)
    else:
        fit = fit_lora(bases[0], images, train.index(images), train.p_left, val.index(images), val.p_left, cfg,
                       progress)
    encoder = PerceptualEncoder(bases, head, _encoder_config(cfg, triplets.source, fit.best_score),
                                name=f"run:{cfg.out}")
    out = Path(cfg.out)
    encoder.save(out)
    _save_roles(out / "split.csv", train, val, test)

    metrics: dict[str, Any] = {
        "source": triplets.source, "mode": cfg.mode, "encoders": list(cfg.encoders), "split": cfg.split,
        "n_train": len(train), "n_val": len(val), "n_test": len(test) if test is not None else 0,
        "human_ceiling": human_ceiling(triplets.p_left if test is None else test.p_left),
        "best_epoch": fit.best_epoch, "best_val_2afc": fit.best_score, "seconds": fit.seconds,
        "history": fit.history,
    }
    if test is not None:
        metrics["before"], metrics["after"] = before, _scores(encoder, test, cfg)
        # the simplest trained baseline, same split and loss: one view as rendered, RGB input
        plain_cfg = dataclasses.replace(plain_cfg, n_views=1)
        plain_head, _ = _head_encoder(bases, images, train, val, plain_cfg, False)
        plain = PerceptualEncoder(bases, plain_head, _encoder_config(plain_cfg, triplets.source))
        metrics["plain_mlp"] = _scores(plain, test, plain_cfg)
    write_json(out / "metrics.json", metrics)
    with atomic_write(out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    plot_curves(fit.history, out / "curves.png")
    return metrics


def _save_roles(path: Path, train: Triplets, val: Triplets, test: Triplets | None) -> None:
    """Every triplet with its role (train / val / test), so a run's splits can be checked."""
    import pandas as pd

    from fashionlens.utils import atomic_write

    parts = [(train, "train"), (val, "val")] + ([(test, "test")] if test is not None else [])
    frame = pd.concat([t.to_frame().assign(role=role) for t, role in parts], ignore_index=True)
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


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
    """Rows of the held-out table (as rendered, relit, gap = rendered - relit): each model's 2AFC
    with its 95% CI as text, from a metrics dict."""
    names = {"clean": "as rendered", "lighting": "relit (proxy)", "gap": "gap (rendered - relit)"}
    models = {"untuned": "before", "plain MLP": "plain_mlp", "tuned": "after"}
    rows = []
    for cond in metrics["after"]:
        row: dict[str, Any] = {"condition": names.get(cond, cond)}
        for label, key in models.items():
            r = metrics.get(key, {}).get(cond)
            row[label] = f"{r['2afc']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]" if r else ""
        row["human_ceiling"] = metrics["after"][cond].get("human_ceiling", "")
        row["n"] = metrics["after"][cond]["n"]
        rows.append(row)
    return rows
