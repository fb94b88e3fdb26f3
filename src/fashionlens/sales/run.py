"""A sales experiment as a config: load the catalog, split it, fit or compare, save the run.

`SalesFitConfig` / `SalesCompareConfig` hold every option of `fashionlens sales fit` / `compare`
(the CLI only parses arguments into them); `fit_sales` writes a run folder whose config.json is the
run manifest (kind "sales") with everything needed to refit the model exactly (no pickled model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog import Catalog
from fashionlens.config import Config
from fashionlens.sales.forecast import DEFAULT_ENCODER, FeatureSpec, Target


@dataclass
class SalesConfig(Config):
    """What both commands share: the catalog, the target and the held-out split."""

    catalog: str = ""  # VISUELLE folder or sales.csv, H&M folder, listings table, or any catalog
    target: str = ""  # target column(s); "weekly" = the week_* curve
    model: str = "ridge"  # knn | ridge | rf | gbr | lgbm
    encoder: str = DEFAULT_ENCODER  # embeds the photos of an `image` feature SPEC
    layout: str = "auto"  # auto | visuelle | hm | listings | catalog
    task: str = "auto"  # auto | regression | classification
    test_where: list[str] = field(default_factory=list)  # COL=V1,V2: test on these items
    test_size: float = 0.25  # random test share without test_where
    start: str | None = None  # H&M: the sales window
    end: str | None = None
    cache_dir: str | None = None  # embedding cache (None: the fashionlens cache)
    seed: int = 0


@dataclass
class SalesFitConfig(SalesConfig):
    """`sales fit`: one model on one feature SPEC, scored beside the baselines."""

    features: str = ""  # comma list of catalog columns and `image`
    hpo: int = 0  # Optuna trials (K-fold CV on the train items)
    params: dict[str, Any] = field(default_factory=dict)  # estimator parameters (hpo starts from them)


@dataclass
class SalesCompareConfig(SalesConfig):
    """`sales compare`: does feature SPEC `a` beat `b` with the same model and split?"""

    a: str = ""
    b: str = ""
    metric: str | None = None  # wape | mae (regression), brier | error (classification)
    n_boot: int = 2000  # bootstrap resamples (and permutations)


def load_split(cfg: SalesConfig) -> tuple[Catalog, str, Target, np.ndarray, np.ndarray]:
    """(catalog, its layout, the checked target, train rows, test rows) of a config."""
    from fashionlens.sales.data import detect_layout, load_sales_catalog
    from fashionlens.sales.forecast import resolve_target, split_catalog
    from fashionlens.search.filters import parse_filters

    kind = detect_layout(cfg.catalog) if cfg.layout == "auto" else cfg.layout
    window = {k: v for k, v in (("start", cfg.start), ("end", cfg.end)) if v} if kind == "hm" else {}
    cat = load_sales_catalog(cfg.catalog, kind, **window)
    target = resolve_target(cat, cfg.target, cfg.task)
    where = {k: v.split(",") for k, v in parse_filters(cfg.test_where).items()}
    for col in where:
        cat.column(col)  # KeyError listing the columns
    train, test = split_catalog(cat, test_where=where or None, test_size=cfg.test_size, seed=cfg.seed)
    return cat, kind, target, train, test


def _encoder(cfg: SalesConfig, specs: list[FeatureSpec]) -> Any:
    if not any(s.image for s in specs):
        return None
    from fashionlens.encoders.registry import create

    return create(cfg.encoder)


def _cache(cfg: SalesConfig) -> str | Path:
    from fashionlens.embed import DEFAULT_CACHE

    return cfg.cache_dir or DEFAULT_CACHE


def fit_sales(cfg: SalesFitConfig, out: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Fit `cfg.model` on the train items and score it and the baselines on the test items.

    With `out`: metrics.json, predictions.csv and config.json (the run manifest) in that folder.
    Returns `evaluate`'s result plus the target, task and split sizes."""
    import pandas as pd

    from fashionlens.manifest import check_overwrite, write_manifest
    from fashionlens.sales.forecast import evaluate
    from fashionlens.utils import atomic_write, write_json

    out = Path(out) if out is not None else None
    if out is not None:
        check_overwrite(out, "sales", marks=None)  # before any work: its files would land among another folder's
    cat, kind, tgt, train, test = load_split(cfg)
    spec = FeatureSpec.parse(cfg.features)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    res = evaluate(cat, tgt, spec, cfg.model, train, test, encoder=_encoder(cfg, [spec]), cache_dir=_cache(cfg),
                   params=cfg.params, hpo=cfg.hpo, study_path=out / "optuna.db" if out is not None and cfg.hpo else None,
                   seed=cfg.seed, progress=progress)
    res |= {"target": tgt.name, "task": tgt.task, "n_train": len(train), "n_test": len(test)}
    if out is None:
        return res
    y, pred = tgt.values[test], res["predictions"]
    preds = pd.DataFrame({"id": cat.df["id"].iloc[test].to_numpy()})
    for j, col in enumerate(tgt.columns):
        preds[col] = y if y.ndim == 1 else y[:, j]
        preds[f"pred_{col}"] = pred if pred.ndim == 1 else pred[:, j]
    with atomic_write(out / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    write_manifest(out, "sales", {**cfg.to_dict(), "catalog": str(Path(cfg.catalog).resolve())}, layout=kind,
                   task=tgt.task, params=res["params"], n_train=len(train), n_test=len(test))
    write_json(out / "metrics.json", {k: res[k] for k in ("target", "task", "n_train", "n_test", "rows")})
    return res


def compare_sales(cfg: SalesCompareConfig, progress: bool = False) -> dict[str, Any]:
    """`forecast.compare` of the config's two feature SPECs on its split."""
    from fashionlens.sales.forecast import compare

    cat, _, tgt, train, test = load_split(cfg)
    specs = [FeatureSpec.parse(cfg.a), FeatureSpec.parse(cfg.b)]
    return compare(cat, tgt, *specs, cfg.model, train, test, metric=cfg.metric, encoder=_encoder(cfg, specs),
                   cache_dir=_cache(cfg), n_boot=cfg.n_boot, seed=cfg.seed, progress=progress)
