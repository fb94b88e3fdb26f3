"""scikit-learn estimators for sales: kNN (cosine), ridge, random forest, gradient boosting, LightGBM.

`SalesRegressor` / `SalesClassifier` take a table whose columns are catalog metadata (text ->
categorical, numbers, dates) and image-embedding columns named `img_*`; they build the
`ColumnTransformer` (one-hot or target encoding, scaled numbers, date parts, optional PCA of the
embedding) and the model at `fit`, so they are clone-safe and searchable like any sklearn estimator.
`tune` runs an Optuna search with K-fold CV in a resumable SQLite study.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d
from threadpoolctl import threadpool_limits

from fashionlens.errors import InvalidInputError, NotFoundError

MODELS = ("knn", "ridge", "rf", "gbr", "lgbm")
IMAGE_PREFIX = "img_"


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d table of features, got an array of shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _date_parts(df: pd.DataFrame) -> np.ndarray:
    """Dates -> (years since 2000, month sine/cosine): trend plus season, NaT -> NaN (imputed)."""
    cols = []
    for c in df.columns:
        d = pd.to_datetime(df[c], errors="coerce")
        angle = 2 * np.pi * (d.dt.month.to_numpy(dtype=float) - 1) / 12
        cols += [(d.dt.year + d.dt.day_of_year / 366).to_numpy(dtype=float) - 2000, np.sin(angle), np.cos(angle)]
    return np.column_stack(cols)


def _preprocessor(X: pd.DataFrame, encoding: str, pca: int | None, multi_output: bool, classify: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        StandardScaler,
        TargetEncoder,
    )

    img = [c for c in X.columns if str(c).startswith(IMAGE_PREFIX)]
    dates = [c for c in X.columns if c not in img and pd.api.types.is_datetime64_any_dtype(X[c])]
    numeric = [c for c in X.columns if c not in img and c not in dates and pd.api.types.is_numeric_dtype(X[c])
               and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in img and c not in dates and c not in numeric]
    parts = []
    if categorical:
        fill = SimpleImputer(strategy="constant", fill_value="(missing)")
        # target encoding needs one target per item: multi-output curves fall back to one-hot
        if encoding == "target" and not multi_output:
            enc = TargetEncoder(target_type="binary" if classify else "continuous")
        elif encoding in ("onehot", "target"):
            enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        else:
            raise InvalidInputError(f"unknown encoding '{encoding}': use onehot or target")
        to_str = FunctionTransformer(lambda d: d.astype(str), feature_names_out="one-to-one")
        parts.append(("cat", make_pipeline(fill, to_str, enc), categorical))
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if dates:
        parts.append(("date", make_pipeline(FunctionTransformer(_date_parts), SimpleImputer(strategy="median"),
                                            StandardScaler()), dates))
    if img:
        n = min(pca, len(X), len(img)) if pca else None
        parts.append(("img", PCA(n, random_state=0) if n else "passthrough", img))
    if not parts:
        raise InvalidInputError("no feature columns")
    return ColumnTransformer(parts, sparse_threshold=0.0)


class _SalesBase(BaseEstimator):
    _classify = False

    def _model(self):
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing metadata is imputed
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    def _check_X(self, X, reset: bool) -> pd.DataFrame:
        """A DataFrame as given (text columns are categories); anything else through check_array."""
        if isinstance(X, pd.DataFrame):
            if X.shape[1] == 0:
                raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
            frame = X
        else:
            arr = check_array(X, accept_sparse=False, ensure_all_finite="allow-nan", dtype=None)
            names = self.feature_names_in_ if not reset and arr.shape[1] == self.n_features_in_ else None
            frame = pd.DataFrame(arr, columns=names if names is not None else [f"x{i}" for i in range(arr.shape[1])])
        if reset:
            self.n_features_in_ = frame.shape[1]
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        elif frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        return frame

    def fit(self, X, y):
        from sklearn.pipeline import Pipeline

        if self.model not in MODELS:
            raise InvalidInputError(f"unknown model '{self.model}'; choose one of {', '.join(MODELS)}")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = self._check_X(X, reset=True)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self._multi = y.ndim == 2 and y.shape[1] > 1
        pre = _preprocessor(X, self.encoding, self.pca, self._multi, self._classify)
        # OpenMP/BLAS pools sized to n_jobs: on a busy small machine, oversubscribed histogram
        # boosting runs ~50x slower than on one thread
        with threadpool_limits(self.n_jobs):
            self.pipeline_ = Pipeline([("features", pre), ("model", self._model())]).fit(X, y)
        return self

    def _frame(self, X) -> pd.DataFrame:
        check_is_fitted(self, "pipeline_")
        return self._check_X(X, reset=False)

    def predict(self, X) -> np.ndarray:
        X = self._frame(X)  # checks fitted first
        with threadpool_limits(self.n_jobs):
            return self.pipeline_.predict(X)


class SalesRegressor(RegressorMixin, _SalesBase):
    """Regressor over metadata + image columns. `log_target` fits log1p(y) (sales are skewed)."""

    def __init__(self, model: str = "ridge", encoding: str = "onehot", pca: int | None = 32,
                 alpha: float = 10.0, n_neighbors: int = 10, n_estimators: int = 200,
                 max_depth: int | None = None, min_samples_leaf: int = 3, learning_rate: float = 0.05,
                 num_leaves: int = 15, log_target: bool = False, random_state: int = 0, n_jobs: int = 1):
        self.model, self.encoding, self.pca, self.alpha = model, encoding, pca, alpha
        self.n_neighbors, self.n_estimators, self.max_depth = n_neighbors, n_estimators, max_depth
        self.min_samples_leaf, self.learning_rate, self.num_leaves = min_samples_leaf, learning_rate, num_leaves
        self.log_target, self.random_state, self.n_jobs = log_target, random_state, n_jobs

    def fit(self, X, y):
        if self.log_target and y is not None and np.nanmin(np.asarray(y, dtype=float)) < 0:
            raise InvalidInputError("log_target=True needs a target >= 0 (it fits log1p(y))")
        return super().fit(X, y)

    def _model(self):
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
        from sklearn.linear_model import Ridge
        from sklearn.multioutput import MultiOutputRegressor
        from sklearn.neighbors import KNeighborsRegressor

        m = self.model
        if m == "knn":
            est = KNeighborsRegressor(n_neighbors=self.n_neighbors, metric="cosine", weights="distance")
        elif m == "ridge":
            est = Ridge(alpha=self.alpha)
        elif m == "rf":
            est = RandomForestRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                        min_samples_leaf=self.min_samples_leaf, max_features=0.5,
                                        random_state=self.random_state, n_jobs=self.n_jobs)
        elif m == "gbr":
            est = HistGradientBoostingRegressor(max_iter=self.n_estimators, learning_rate=self.learning_rate,
                                                max_leaf_nodes=self.num_leaves, max_depth=self.max_depth,
                                                min_samples_leaf=self.min_samples_leaf, random_state=self.random_state)
        else:
            from lightgbm import LGBMRegressor

            est = LGBMRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                num_leaves=self.num_leaves, max_depth=self.max_depth or -1,
                                min_child_samples=self.min_samples_leaf, random_state=self.random_state,
                                n_jobs=self.n_jobs, verbose=-1)
        if self._multi and m in ("gbr", "lgbm"):  # boosting fits one target at a time
            est = MultiOutputRegressor(est)
        if self.log_target:
            est = TransformedTargetRegressor(est, func=np.log1p, inverse_func=np.expm1, check_inverse=False)
        return est


class SalesClassifier(ClassifierMixin, _SalesBase):
    """Sold / not-sold classifier; `model="ridge"` is L2 logistic regression with C = 1 / alpha."""

    _classify = True

    def __init__(self, model: str = "ridge", encoding: str = "onehot", pca: int | None = 32,
                 alpha: float = 10.0, n_neighbors: int = 10, n_estimators: int = 200,
                 max_depth: int | None = None, min_samples_leaf: int = 3, learning_rate: float = 0.05,
                 num_leaves: int = 15, random_state: int = 0, n_jobs: int = 1):
        self.model, self.encoding, self.pca, self.alpha = model, encoding, pca, alpha
        self.n_neighbors, self.n_estimators, self.max_depth = n_neighbors, n_estimators, max_depth
        self.min_samples_leaf, self.learning_rate, self.num_leaves = min_samples_leaf, learning_rate, num_leaves
        self.random_state, self.n_jobs = random_state, n_jobs

    def fit(self, X, y):
        if y is None:
            raise ValueError("SalesClassifier requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise InvalidInputError(f"the target has 1 class ({self.classes_[0] if len(y) else 'empty'}): nothing to classify")
        return super().fit(X, y)

    def predict_proba(self, X) -> np.ndarray:
        X = self._frame(X)
        with threadpool_limits(self.n_jobs):
            return self.pipeline_.predict_proba(X)

    def _model(self):
        from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier

        m = self.model
        if m == "knn":
            return KNeighborsClassifier(n_neighbors=self.n_neighbors, metric="cosine", weights="distance")
        if m == "ridge":
            return LogisticRegression(C=1.0 / self.alpha, max_iter=2000)
        if m == "rf":
            return RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                          min_samples_leaf=self.min_samples_leaf, max_features=0.5,
                                          random_state=self.random_state, n_jobs=self.n_jobs)
        if m == "gbr":
            return HistGradientBoostingClassifier(max_iter=self.n_estimators, learning_rate=self.learning_rate,
                                                  max_leaf_nodes=self.num_leaves, max_depth=self.max_depth,
                                                  min_samples_leaf=self.min_samples_leaf,
                                                  random_state=self.random_state)
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                              num_leaves=self.num_leaves, max_depth=self.max_depth or -1,
                              min_child_samples=self.min_samples_leaf, random_state=self.random_state,
                              n_jobs=self.n_jobs, verbose=-1)


class GroupMeanRegressor(RegressorMixin, BaseEstimator):
    """Baseline: the training mean of y within each value of `group` (global mean for unseen groups)."""

    def __init__(self, group: str = "category"):
        self.group = group

    def fit(self, X, y):
        X = _as_frame(X)
        if self.group not in X.columns:
            raise NotFoundError(f"group column '{self.group}' is not among the features")
        y = np.asarray(y, dtype=float)
        keys = X[self.group].astype(str).to_numpy()
        self.global_mean_ = y.mean(axis=0)
        self.means_ = {k: y[keys == k].mean(axis=0) for k in np.unique(keys)}
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "means_")
        keys = _as_frame(X)[self.group].astype(str)
        return np.array([self.means_.get(k, self.global_mean_) for k in keys])


def search_space(trial, est: _SalesBase, has_image: bool, has_categorical: bool, nonneg: bool) -> dict:
    """Hyper-parameters Optuna samples for `est.model` (plus encoding / PCA / log target)."""
    m = est.model
    p: dict = {}
    if m == "knn":
        p["n_neighbors"] = trial.suggest_int("n_neighbors", 1, 50, log=True)
    elif m == "ridge":
        p["alpha"] = trial.suggest_float("alpha", 1e-3, 1e4, log=True)
    else:
        p["n_estimators"] = trial.suggest_int("n_estimators", 50, 400, log=True)
        p["min_samples_leaf"] = trial.suggest_int("min_samples_leaf", 1, 30, log=True)
        p["max_depth"] = trial.suggest_categorical("max_depth", [None, 3, 6, 12])
        if m in ("gbr", "lgbm"):
            p["learning_rate"] = trial.suggest_float("learning_rate", 0.01, 0.3, log=True)
            p["num_leaves"] = trial.suggest_int("num_leaves", 4, 64, log=True)
    if has_image:
        p["pca"] = trial.suggest_categorical("pca", [8, 16, 32, 64, 128])
    if has_categorical:
        p["encoding"] = trial.suggest_categorical("encoding", ["onehot", "target"])
    if isinstance(est, SalesRegressor) and nonneg:
        p["log_target"] = trial.suggest_categorical("log_target", [False, True])
    return p


def tune(est: _SalesBase, X: pd.DataFrame, y, n_trials: int, *, cv: int = 5, storage: str | Path | None = None,
         study_name: str = "sales", seed: int = 0) -> tuple[dict, object]:
    """Optuna search of `est`'s hyper-parameters by K-fold CV (MAE for regression, ROC AUC for classes).

    With `storage` (a .db path) the study lives in SQLite: re-running with the same name resumes it
    and only runs the trials still missing to reach `n_trials` completed ones.
    Returns (best params, study).
    """
    import optuna
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X = _as_frame(X)
    y = np.asarray(y)
    classify = isinstance(est, SalesClassifier)
    folds = (StratifiedKFold if classify else KFold)(n_splits=cv, shuffle=True, random_state=seed)
    scoring = "roc_auc" if classify else "neg_mean_absolute_error"
    has_image = any(str(c).startswith(IMAGE_PREFIX) for c in X.columns)
    has_cat = any(not pd.api.types.is_numeric_dtype(X[c]) for c in X.columns)
    nonneg = bool(np.issubdtype(y.dtype, np.number) and y.min() >= 0)
    url = f"sqlite:///{Path(storage).resolve()}" if storage else None
    if storage:
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=study_name, storage=url, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial) -> float:
        cand = clone(est).set_params(**search_space(trial, est, has_image, has_cat, nonneg))
        return float(cross_val_score(cand, X, y, cv=folds, scoring=scoring).mean())

    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if n_trials > done:
        # a combination that cannot be fitted is recorded as a failed trial, not the end of the search
        study.optimize(objective, n_trials=n_trials - done, catch=(ValueError,))
    return dict(study.best_params), study
