"""Sales metrics (pure functions): MAE, WAPE, RMSE, R² for regression; accuracy, ROC AUC, F1.

Multi-output targets (a weekly sales curve, shape (n, weeks)) are scored over all cells:
WAPE = sum |y - ŷ| / sum |y|, the forecasting literature's choice (VISUELLE, GTM-Transformer).
"""

from __future__ import annotations

import numpy as np

from fashionlens.errors import InvalidInputError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"y_true has shape {y.shape} but y_pred has shape {p.shape}")
    if y.size == 0:
        raise InvalidInputError("no items to score")
    return y, p


def mae(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.abs(y - p).mean())


def wape(y_true, y_pred) -> float:
    """Weighted absolute percentage error: sum |y - ŷ| / sum |y| (nan when nothing sold)."""
    y, p = _pair(y_true, y_pred)
    den = np.abs(y).sum()
    return float(np.abs(y - p).sum() / den) if den > 0 else float("nan")


def rmse(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.sqrt(((y - p) ** 2).mean()))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination over all cells (1 - SSE / SST); nan for a constant target."""
    y, p = _pair(y_true, y_pred)
    sst = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - p) ** 2).sum() / sst) if sst > 0 else float("nan")


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    return {"wape": wape(y_true, y_pred), "mae": mae(y_true, y_pred),
            "rmse": rmse(y_true, y_pred), "r2": r2(y_true, y_pred)}


def binary_metrics(y_true, proba, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy and F1 at `threshold`, ROC AUC of the scores (nan when one class is missing)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y = np.asarray(y_true).astype(int)
    s = np.asarray(proba, dtype=np.float64)
    pred = (s >= threshold).astype(int)
    auc = float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")
    return {"accuracy": float(accuracy_score(y, pred)), "roc_auc": auc,
            "f1": float(f1_score(y, pred, zero_division=0))}
