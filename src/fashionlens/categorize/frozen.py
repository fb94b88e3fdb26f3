"""Heads on frozen features: the logistic probe, the MLP head, and one MLP head per input size.

The part of `Categorizer.fit` that needs only feature views of the train and validation photos (the
split, rare-class merge and class weights are made before it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fashionlens.categorize.data import oversample
from fashionlens.categorize.heads import MLPHead, ProbeHead, fit_block_heads
from fashionlens.embed.runner import decoded

if TYPE_CHECKING:
    from fashionlens.catalog.core import Catalog
    from fashionlens.categorize.categorizer import Categorizer


def fit_frozen(clf: Categorizer, train: Catalog, yi_tr: np.ndarray, val: Catalog, yi_va: np.ndarray,
               weights: np.ndarray | None, log: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Fit `clf.head_` (method probe / head, `config.sizes` for one head per size) on the views of
    `train`, early-stopping MLP heads on `val`; photos that failed to decode are left out (already
    reported). Returns the validation views and labels that were kept."""
    cfg = clf.config
    tr_views, yi_tr = _decoded_only(clf._views(train, train=True), yi_tr)
    va_views, yi_va = _decoded_only(clf._views(val), yi_va) if len(yi_va) else ([], yi_va)
    names = list(clf.classes_)
    if cfg.method == "head" and cfg.sizes:
        clf.head_ = fit_block_heads({"seed": cfg.seed, **cfg.head}, len(cfg.sizes), tr_views[0], yi_tr,
                                    _sample_weight(weights, yi_tr), (va_views[0], yi_va) if len(yi_va) else None,
                                    log, names)
        if len(yi_va):
            clf.val_ = (yi_va, clf._combine(va_views))
            clf.val_parts_ = [clf._padded(m.predict_proba(va_views[0][:, a:b]), m)  # per size
                              for m, (a, b) in zip(clf.head_.members, clf.head_.columns)]
        return va_views, yi_va
    X, yy = (np.concatenate(tr_views), np.tile(yi_tr, len(tr_views))) if cfg.method == "head" else (tr_views[0], yi_tr)
    if cfg.balance == "oversample":
        pos = oversample(yy, cfg.oversample_to, cfg.seed)
        X, yy = X[pos], yy[pos]
    if cfg.method == "head":
        clf.head_ = MLPHead(**{"seed": cfg.seed, **cfg.head}).fit(
            X, yy, _sample_weight(weights, yy), eval_set=(va_views, yi_va) if len(yi_va) else None, log=log,
            class_names=names)
        clf.history_ = clf.head_.history_
        if len(yi_va):  # kept (not saved) for an ensemble built from this fit
            clf.val_ = (yi_va, clf._combine(va_views))
    else:
        clf.head_ = ProbeHead(C=cfg.probe_C).fit(X, yy, _sample_weight(weights, yy))
    return va_views, yi_va


def _sample_weight(class_weight: np.ndarray | None, y: np.ndarray) -> np.ndarray | None:
    return None if class_weight is None else class_weight[y]


def _decoded_only(views: list[np.ndarray], y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Views and labels without the items whose photo failed to decode (zero rows, already reported)."""
    ok = decoded(views[0])
    return [v[ok] for v in views], y[ok]
