"""Predict sales and sell-through of new products from their photo and metadata.

Pieces: feature SPECs ("image,category,color" -> a table of metadata columns + `img_*` embedding
columns), target checks (text, missing values, a single class -> a clear error), baselines (mean,
per-category mean, metadata-only), hold-out evaluation with MAE/WAPE/RMSE/R² or accuracy/AUC/F1,
and `compare` — a paired bootstrap + permutation test of feature set A against feature set B.
Importers live in `sales_data`, estimators and the Optuna search in `sales_models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fashionlens.catalog import Catalog
from fashionlens.errors import InvalidInputError, NotFoundError
from fashionlens.evaluation.regression import binary_metrics, regression_metrics
from fashionlens.evaluation.statistics import paired_bootstrap, permutation_test
from fashionlens.sales.data import (
    detect_layout,
    load_hm,
    load_listings,
    load_sales_catalog,
    load_visuelle,
    week_columns,
)
from fashionlens.sales.models import (
    IMAGE_PREFIX,
    MODELS,
    GroupMeanRegressor,
    SalesClassifier,
    SalesRegressor,
    tune,
)

__all__ = [
    "MODELS", "FeatureSpec", "GroupMeanRegressor", "SalesClassifier", "SalesRegressor", "Target",
    "baselines", "build_features", "compare", "detect_layout", "evaluate", "item_losses", "load_hm", "load_listings",
    "load_sales_catalog", "load_visuelle", "make_estimator", "resolve_target", "split_catalog", "tune",
]
DEFAULT_ENCODER = "efficientnet-lite0"
GROUP_COLUMNS = ("category", "articleType", "product_type_name", "subCategory")
_TRUE = {"1", "true", "yes", "sold"}
_FALSE = {"0", "false", "no", "unsold"}


@dataclass(frozen=True)
class FeatureSpec:
    """Which inputs a model sees: catalog columns and/or `image` (the photo's embedding)."""

    columns: tuple[str, ...] = ()
    image: bool = False

    @classmethod
    def parse(cls, spec: str) -> FeatureSpec:
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts:
            raise InvalidInputError("empty feature SPEC: give catalog columns and/or 'image', comma-separated")
        return cls(tuple(dict.fromkeys(p for p in parts if p != "image")), "image" in parts)

    def __str__(self) -> str:
        return ",".join([*self.columns, *(["image"] if self.image else [])])


def build_features(catalog: Catalog, spec: FeatureSpec | str, encoder=None, *, cache_dir=None,
                   pca: int | None = None, embeddings: np.ndarray | None = None,
                   progress: bool = False) -> pd.DataFrame:
    """Feature table: the spec's catalog columns plus `img_0..` embedding columns when `image` is in it.

    Embeddings come from `embed_images(encoder, ...)` (or pass precomputed `embeddings`, one row per
    item). Items without a photo (`has_image` False, or a photo that fails to decode) get a zero
    embedding and a `has_image` indicator column so a model can tell "no photo" from a photo. `pca`
    here reduces the whole catalog's embeddings once (unsupervised); the estimators' own `pca` is
    fitted on training items only.
    """
    spec = FeatureSpec.parse(spec) if isinstance(spec, str) else spec
    bad = [c for c in spec.columns if c not in catalog.df.columns or c in ("id", "image")]
    if bad:
        cols = ", ".join(c for c in catalog.df.columns if c not in ("id", "image"))
        raise NotFoundError(f"unknown feature column(s) {', '.join(map(repr, bad))}; catalog columns: {cols}")
    X = catalog.df[list(spec.columns)].reset_index(drop=True).copy()
    if not spec.image:
        return X
    has = np.array(catalog.df["has_image"], bool) if "has_image" in catalog.df else np.ones(len(catalog), bool)
    if embeddings is None:
        if encoder is None:
            from fashionlens.encoders.registry import create

            encoder = create(DEFAULT_ENCODER)
        from fashionlens.embed import decoded, embed_images

        rows = np.flatnonzero(has)
        emb = np.zeros((len(catalog), encoder.dim), dtype=np.float32)
        if len(rows):
            emb[rows] = embed_images(encoder, catalog.subset(rows), cache_dir=cache_dir, progress=progress)
            has[rows] = decoded(emb[rows])  # failed photos (reported, zero rows) count as no photo
    else:
        emb = np.asarray(embeddings, dtype=np.float32)
        if len(emb) != len(catalog):
            raise ValueError(f"{len(emb)} embeddings for {len(catalog)} items")
    if pca:
        from sklearn.decomposition import PCA

        emb = PCA(min(pca, len(emb), emb.shape[1]), random_state=0).fit_transform(emb).astype(np.float32)
    img = pd.DataFrame(emb, columns=[f"{IMAGE_PREFIX}{i}" for i in range(emb.shape[1])])
    if not has.all() and "has_image" not in X.columns:
        img["has_image"] = has.astype(float)
    return pd.concat([X, img], axis=1)


@dataclass
class Target:
    """A checked target: values (n,) or (n, k) for a weekly curve, and the task it implies."""

    columns: list[str]
    values: np.ndarray
    task: str  # "regression" | "classification"
    classes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.columns[0] if len(self.columns) == 1 else f"{self.columns[0]}..{self.columns[-1]}"


def resolve_target(catalog: Catalog, target: str, task: str = "auto") -> Target:
    """Check and read the target column(s); `weekly` = every week_* column (a sales curve).

    Raises ValueError naming the column for text, missing values, a single class or a constant.
    """
    if task not in ("auto", "regression", "classification"):
        raise InvalidInputError(f"unknown task '{task}': use auto, regression or classification")
    cols = week_columns(catalog) if target == "weekly" else [c.strip() for c in target.split(",") if c.strip()]
    if not cols:
        raise InvalidInputError(f"target '{target}': no such column(s) (weekly needs week_0.. columns)")
    for c in cols:
        catalog.column(c)  # KeyError listing the columns
    df = catalog.df[cols]
    for c in cols:
        miss = df[c].isna()
        if miss.any():
            ids = ", ".join(catalog.df.loc[miss, "id"].astype(str).head(3))
            raise InvalidInputError(f"target column '{c}' has {int(miss.sum())} missing values (items {ids}, ...): "
                             "fill or filter them first")
    if len(cols) == 1:
        s = df[cols[0]]
        low = s.astype(str).str.strip().str.lower()
        binary_like = s.dtype == bool or (low.nunique() <= 2 and low.isin(_TRUE | _FALSE).all())
        if task == "classification" or (task == "auto" and binary_like):
            classes = sorted(low.unique())
            if len(classes) < 2:
                raise InvalidInputError(f"target column '{cols[0]}' has a single class ({s.iloc[0]!r}): nothing to classify")
            if len(classes) > 2:
                raise InvalidInputError(f"target column '{cols[0]}' has {len(classes)} classes; sold/not-sold needs 2")
            pos = next((v for v in classes if v in _TRUE), classes[-1])
            return Target(cols, (low == pos).to_numpy(dtype=int), "classification", [c for c in classes if c != pos] + [pos])
    values = np.empty((len(df), len(cols)))
    for j, c in enumerate(cols):
        num = pd.to_numeric(df[c], errors="coerce") if df[c].dtype != bool else None
        if num is None or num.isna().any():
            example = df[c][num.isna()].iloc[0] if num is not None else True
            raise InvalidInputError(f"target column '{c}' holds non-numeric values (e.g. {example!r}); "
                             "regression needs numbers (for sold/not-sold use a 2-valued flag)")
        values[:, j] = num.to_numpy(dtype=float)
    if np.ptp(values, axis=0).max() == 0:
        raise InvalidInputError(f"target column '{cols[0]}' has a single value ({values[0, 0]:g}): nothing to predict")
    return Target(cols, values[:, 0] if len(cols) == 1 else values, "regression")


def split_catalog(catalog: Catalog, *, test_where: dict[str, list[str]] | None = None,
                  test_size: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, test): items matching `test_where` (e.g. season in SS19, AW19) or a random split."""
    n = len(catalog)
    if test_where:
        mask = np.ones(n, bool)
        for col, values in test_where.items():
            mask &= catalog.df[col].astype(str).isin([str(v) for v in values]).to_numpy()
        if mask.all() or not mask.any():
            raise InvalidInputError(f"test selection {test_where} leaves {int(mask.sum())} of {n} items for testing")
        return np.flatnonzero(~mask), np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = max(1, round(n * test_size))
    return np.sort(perm[k:]), np.sort(perm[:k])


def make_estimator(model: str, task: str, **params):
    cls = SalesClassifier if task == "classification" else SalesRegressor
    return cls(model=model, **params)


def _scores(est, X) -> np.ndarray:
    return est.predict_proba(X)[:, 1] if hasattr(est, "predict_proba") else np.asarray(est.predict(X), float)


def item_losses(y: np.ndarray, pred: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-item loss and denominator whose ratio of sums is the metric (for the paired tests)."""
    y2, p2 = y.reshape(len(y), -1).astype(float), pred.reshape(len(pred), -1).astype(float)
    err = np.abs(y2 - p2).sum(1)
    if metric == "wape":
        return err, np.abs(y2).sum(1)
    if metric == "mae":
        return err, np.full(len(y), y2.shape[1], dtype=float)
    if metric == "brier":
        return ((y2 - p2) ** 2).sum(1), None
    if metric == "error":
        return ((p2 >= 0.5).astype(float) != y2).sum(1).astype(float), None
    raise InvalidInputError(f"unknown metric '{metric}': use wape or mae (regression), brier or error (classification)")


def _metrics(target: Target, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return regression_metrics(y, pred) if target.task == "regression" else binary_metrics(y, pred)


def baselines(target: Target, X_train: pd.DataFrame, X_test: pd.DataFrame, y_train: np.ndarray,
              group: str | None) -> dict[str, np.ndarray]:
    """Test predictions of the mean baseline and (if a group column is given) the per-group mean."""
    mean = np.broadcast_to(y_train.mean(axis=0), (len(X_test), *y_train.shape[1:])).copy()
    out = {"mean": mean}
    if group:
        g = GroupMeanRegressor(group).fit(X_train[[group]], y_train.astype(float))
        out[f"per-{group} mean"] = g.predict(X_test[[group]])
    return out


def pick_group(catalog: Catalog) -> str | None:
    return next((c for c in GROUP_COLUMNS if c in catalog.df.columns), None)


def evaluate(catalog: Catalog, target: Target, spec: FeatureSpec, model: str, train: np.ndarray,
             test: np.ndarray, *, encoder=None, cache_dir=None, embeddings=None, params: dict | None = None,
             hpo: int = 0, study_path: str | Path | None = None, seed: int = 0, progress: bool = False) -> dict:
    """Fit `model` on `spec` features of the train rows and score it and the baselines on the test rows.

    Returns {"rows": [{name, metrics...}], "predictions": test predictions, "params": fitted params}.
    With `hpo` > 0 the hyper-parameters come from a K-fold Optuna search on the train rows.
    """
    X = build_features(catalog, spec, encoder, cache_dir=cache_dir, embeddings=embeddings, progress=progress)
    y = target.values
    params = dict(params or {})
    if hpo:
        est = make_estimator(model, target.task, **params)
        best, _ = tune(est, X.iloc[train], y[train], hpo, storage=study_path, seed=seed,
                       study_name=f"sales-{target.name}-{spec}-{model}".replace(" ", "_"))
        params.update(best)
    est = make_estimator(model, target.task, **params).fit(X.iloc[train], y[train])
    pred = _scores(est, X.iloc[test])
    group = pick_group(catalog)
    meta = build_features(catalog, FeatureSpec((group,) if group else ()))
    rows = [{"name": name, **_metrics(target, y[test], p)}
            for name, p in baselines(target, meta.iloc[train], meta.iloc[test], y[train], group).items()]
    if spec.image and spec.columns:
        meta_spec = FeatureSpec(spec.columns)
        Xm = build_features(catalog, meta_spec)
        m = make_estimator(model, target.task, **{k: v for k, v in params.items() if k != "pca"})
        rows.append({"name": f"{model} metadata-only ({meta_spec})",
                     **_metrics(target, y[test], _scores(m.fit(Xm.iloc[train], y[train]), Xm.iloc[test]))})
    rows.append({"name": f"{model} ({spec})", **_metrics(target, y[test], pred)})
    return {"rows": rows, "predictions": pred, "params": est.get_params()}


def compare(catalog: Catalog, target: Target, spec_a: FeatureSpec, spec_b: FeatureSpec, model: str,
            train: np.ndarray, test: np.ndarray, *, metric: str | None = None, encoder=None, cache_dir=None,
            embeddings=None, n_boot: int = 2000, seed: int = 0, params: dict | None = None,
            progress: bool = False) -> dict:
    """Does feature set A beat B? Same model and split; paired bootstrap CI + two-sided p-values.

    `diff` = metric(A) - metric(B) on the test items (negative: A has less error).
    """
    metric = metric or ("wape" if target.task == "regression" else "brier")
    y = target.values
    preds = []
    for spec in (spec_a, spec_b):
        X = build_features(catalog, spec, encoder, cache_dir=cache_dir, embeddings=embeddings, progress=progress)
        est = make_estimator(model, target.task, **(params or {})).fit(X.iloc[train], y[train])
        preds.append(_scores(est, X.iloc[test]))
    (la, den), (lb, _) = item_losses(y[test], preds[0], metric), item_losses(y[test], preds[1], metric)
    boot = paired_bootstrap(la, lb, den, n_boot=n_boot, seed=seed)
    perm = permutation_test(la, lb, den, n_perm=n_boot, seed=seed)
    return {"metric": metric, "target": target.name, "model": model, "a": str(spec_a), "b": str(spec_b),
            "metric_a": boot.stat_a, "metric_b": boot.stat_b, "diff": boot.diff, "ci95": list(boot.ci95),
            "p_value": boot.p_value, "p_permutation": perm.p_value, "n_test": int(len(test))}
