"""Classification evidence: accuracy, top-k, macro/weighted P/R/F1, per-class table, confusion matrix.

Pure functions on integer class indices (0..n_classes-1); `labels` only names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; rows are true classes, columns predicted ones."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items but y_pred has {p.size}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def topk_accuracy(y_true: Sequence[int], proba: np.ndarray, k: int = 5) -> float:
    """Share of rows whose true class is among the k highest scores."""
    t = np.asarray(y_true, dtype=np.int64)
    if len(t) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    top = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    return float((top == t[:, None]).any(axis=1).mean())


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[str],
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, top-5, macro/weighted P/R/F1 and a per-class table.

    Macro averages run over the classes that occur in y_true or y_pred (scikit-learn's default),
    so a class the model never predicts and never meets does not dilute them.
    """
    n_classes = len(labels)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    p, r, f1, support = precision_recall_f1(cm)
    present = (support > 0) | (cm.sum(axis=0) > 0)
    n = int(cm.sum())
    w = support / n if n else np.zeros_like(p)
    out: dict[str, Any] = {
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else float("nan"),
        "top5_accuracy": topk_accuracy(y_true, proba, 5) if proba is not None else None,
        "macro_precision": float(p[present].mean()) if present.any() else float("nan"),
        "macro_recall": float(r[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "weighted_precision": float((p * w).sum()),
        "weighted_recall": float((r * w).sum()),
        "weighted_f1": float((f1 * w).sum()),
        "per_class": [
            {"label": str(labels[i]), "precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
             "support": int(support[i])}
            for i in range(n_classes) if present[i]
        ],
    }
    return out


def top_confusions(cm: np.ndarray, labels: Sequence[str], k: int = 20) -> list[dict[str, Any]]:
    """The k largest off-diagonal cells: which true class is taken for which, how often."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    support = cm.sum(axis=1)
    rows = []
    for f in flat:
        i, j = divmod(int(f), cm.shape[1])
        if off[i, j] == 0:
            break
        rows.append({"true": str(labels[i]), "predicted": str(labels[j]), "count": int(off[i, j]),
                     "share_of_true": float(off[i, j] / support[i])})
    return rows


def confusion_json(cm: np.ndarray, labels: Sequence[str], k: int = 30) -> dict[str, Any]:
    """JSON-ready confusion matrix with its labels and top confusions."""
    return {"labels": [str(x) for x in labels], "matrix": cm.tolist(), "top_confusions": top_confusions(cm, labels, k)}


def plot_confusion(
    cm: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str = "confusion matrix (rows normalised: recall)",
    order: Sequence[int] | None = None,
) -> Path:
    """Row-normalised confusion matrix as a PNG, readable up to ~150 classes.

    `order` permutes the classes (e.g. grouped by parent category) so confusions cluster.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashionlens.utils import save_figure

    idx = np.asarray(order if order is not None else range(len(labels)), dtype=np.int64)
    m = cm[np.ix_(idx, idx)].astype(np.float64)
    m = np.divide(m, m.sum(axis=1, keepdims=True), out=np.zeros_like(m), where=m.sum(axis=1, keepdims=True) > 0)
    n = len(idx)
    side = min(28.0, max(5.0, 0.16 * n + 2))  # inches: ~0.16" per class keeps 4-pt labels legible
    font = max(3.0, min(9.0, 360 / max(n, 1)))
    fig, ax = plt.subplots(figsize=(side, side * 0.92))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    names = [str(labels[i]) for i in idx]
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:  # numbers only where they fit
        for i in range(n):
            for j in range(n):
                if m[i, j] >= 0.005:
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=font,
                            color="white" if m[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    return save_figure(fig, path, dpi=110)
