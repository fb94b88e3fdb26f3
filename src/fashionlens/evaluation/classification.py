"""Classification evidence: accuracy, top-k, macro/weighted P/R/F1, per-class table, confusion matrix.

Pure functions on integer class indices (0..n_classes-1); `labels` only names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RARE_SUPPORT = 20  # below this many test items a class's precision/recall is too noisy to read alone


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; rows are true classes, columns predicted ones."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items but y_pred has {p.size}")
    return sk_confusion(t, p, labels=np.arange(n_classes)).astype(np.int64)


def topk_accuracy(y_true: Sequence[int], proba: np.ndarray, k: int = 5) -> float:
    """Share of rows whose true class is among the k highest scores."""
    from sklearn.metrics import top_k_accuracy_score

    t = np.asarray(y_true, dtype=np.int64)
    if len(t) == 0:
        return float("nan")
    k = min(k, proba.shape[1])
    if k == proba.shape[1]:
        return 1.0
    return float(top_k_accuracy_score(t, proba, k=k, labels=np.arange(proba.shape[1])))


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    labels: Sequence[str],
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, top-5, macro/weighted P/R/F1, a per-class table and warnings (scikit-learn).

    Macro averages run over the classes present in the test truth: a class the test set lacks says
    nothing about recall. Classes it lacks but the model predicted are listed under
    `predicted_absent` (their false alarms already lower the precision of nothing measured, so they
    are shown, not averaged). Classes with fewer than RARE_SUPPORT test items are flagged `rare`.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    t, pr = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n_classes = len(labels)
    every = np.arange(n_classes)
    p, r, f1, support = precision_recall_fscore_support(t, pr, labels=every, zero_division=0)
    n_pred = np.bincount(pr, minlength=n_classes)[:n_classes]
    present = support > 0
    n = int(len(t))
    w = support / n if n else np.zeros(n_classes)
    rare = [str(labels[i]) for i in every if 0 < support[i] < RARE_SUPPORT]
    out: dict[str, Any] = {
        "n": n,
        "accuracy": float(accuracy_score(t, pr)) if n else float("nan"),
        "top5_accuracy": topk_accuracy(t, proba, 5) if proba is not None else None,
        "macro_precision": float(p[present].mean()) if present.any() else float("nan"),
        "macro_recall": float(r[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "weighted_precision": float((p * w).sum()),
        "weighted_recall": float((r * w).sum()),
        "weighted_f1": float((f1 * w).sum()),
        "per_class": [
            {"label": str(labels[i]), "precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
             "support": int(support[i]), "predicted": int(n_pred[i]), "rare": bool(support[i] < RARE_SUPPORT)}
            for i in every if present[i]
        ],
        "predicted_absent": [{"label": str(labels[i]), "predicted": int(n_pred[i])}
                             for i in every if not present[i] and n_pred[i] > 0],
        "warnings": [f"{len(rare)} class(es) have fewer than {RARE_SUPPORT} test items, so their precision "
                     f"and recall are noisy: {', '.join(rare[:10])}{' ...' if len(rare) > 10 else ''}"] if rare else [],
    }
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro F1 over the classes present in `y_true`, as `classification_metrics` (bincounts: fast
    enough to recompute on a thousand bootstrap resamples)."""
    t, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    tp = np.bincount(t[t == p], minlength=n_classes)
    support, predicted = np.bincount(t, minlength=n_classes), np.bincount(p, minlength=n_classes)
    present = support > 0
    return float((2 * tp[present] / (support[present] + predicted[present])).mean()) if present.any() else float("nan")


def metric_cis(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int, n_boot: int = 1000,
               seed: int = 0) -> dict[str, list[float]]:
    """95% percentile-bootstrap CIs (items resampled) of accuracy and macro F1."""
    from fashionlens.evaluation.statistics import bootstrap_ci, bootstrap_statistic_ci

    t, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return {"accuracy": list(bootstrap_ci((t == p).astype(np.float64), n_boot, seed)),
            "macro_f1": list(bootstrap_statistic_ci(lambda i: macro_f1(t[i], p[i], n_classes), len(t), n_boot, seed))}


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
