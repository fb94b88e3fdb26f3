"""Evidence files of a categoriser evaluation: metrics, per-class table, confusion matrix, catalog QA."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.categorize.data import OTHER, LabelHierarchy
from fashionlens.evaluation.classification import confusion_json, confusion_matrix, plot_confusion
from fashionlens.utils import atomic_write, save_figure, write_json


def write_report(out: str | Path, metrics: dict[str, Any], y: np.ndarray, proba: np.ndarray,
                 labels: list[str], catalog: Catalog, hierarchy: LabelHierarchy, label: str,
                 qa_threshold: float = 0.8, qa_max: int = 48) -> Path:
    """metrics.json, per_class.csv, confusion.json/.png, qa.json/.png into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    with atomic_write(out / "per_class.csv") as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["label", "precision", "recall", "f1", "support", "predicted", "rare"])
        w.writeheader()
        for row in sorted(metrics["per_class"], key=lambda r: -r["support"]):
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    pred = proba.argmax(1) if len(proba) else np.zeros(0, np.int64)
    cm = confusion_matrix(y, pred, len(labels))
    write_json(out / "confusion.json", confusion_json(cm, labels))
    # group classes by their parent so that confusions inside a family sit next to each other
    parents = hierarchy.above(label)
    key = (lambda i: (hierarchy.ancestor(labels[i], label, parents[0]), labels[i])) if parents else (lambda i: labels[i])
    order = sorted(range(len(labels)), key=key)
    plot_confusion(cm, labels, out / "confusion.png", title=f"{label}: confusion (rows normalised)", order=order)
    qa = catalog_qa(catalog, y, proba, labels, qa_threshold, qa_max)
    write_json(out / "qa.json", {"threshold": qa_threshold, "items": qa})
    if qa:
        plot_qa_grid(qa, out / "qa.png")
    return out


def catalog_qa(catalog: Catalog, y: np.ndarray, proba: np.ndarray, labels: list[str],
               threshold: float = 0.8, max_items: int = 48) -> list[dict[str, Any]]:
    """Items whose catalog label a confident model disagrees with, most confident first.

    Items labelled `other` (rare classes merged at training) are skipped: their own label is unknown."""
    if len(proba) == 0:
        return []
    pred = proba.argmax(1)
    conf = proba[np.arange(len(pred)), pred]
    real = np.asarray([labels[i] != OTHER for i in y], bool)
    flag = np.flatnonzero((pred != y) & (conf >= threshold) & real)
    flag = flag[np.argsort(-conf[flag], kind="stable")][:max_items]
    ids, images = catalog.ids, catalog.images
    return [{"id": ids[i], "image": images[i], "catalog_label": labels[y[i]], "predicted": labels[pred[i]],
             "confidence": round(float(conf[i]), 4), "p_catalog_label": round(float(proba[i, y[i]]), 4)}
            for i in flag]


def plot_qa_grid(items: list[dict[str, Any]], path: str | Path, cols: int = 8) -> Path:
    """Photos of the flagged items with 'catalog: X / model: Y (p)' captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashionlens.catalog.images import ImageError, open_image

    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, it in zip(axes.ravel(), items):
        try:
            ax.imshow(open_image(it["image"]))
        except ImageError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        ax.set_title(f"{it['id']}\ncatalog: {it['catalog_label']}\nmodel: {it['predicted']} ({it['confidence']:.2f})",
                     fontsize=6)
    fig.suptitle("catalog QA: confident model disagrees with the catalog label", fontsize=9)
    return save_figure(fig, path)
