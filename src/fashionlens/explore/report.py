"""`run_explore`: clusters, maps, grids, near-duplicates, why-similar and Grad-CAM of a catalog in one
self-contained report.html (images inlined as base64) plus summary.json."""

from __future__ import annotations

import base64
import html
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fashionlens.catalog.core import Catalog
from fashionlens.config import Config
from fashionlens.encoders.base import Encoder
from fashionlens.errors import InvalidInputError
from fashionlens.explore import clusters as cl
from fashionlens.explore.duplicates import duplicate_groups, near_duplicate_pairs
from fashionlens.explore.grids import groups_grid, image_grid
from fashionlens.explore.maps import METHODS, plot_map, project, thumbnail_map
from fashionlens.utils import atomic_write, write_json


@dataclass
class ExploreConfig(Config):
    """What `run_explore` computes; defaults suit a few thousand items on a small CPU."""

    ks: tuple[int, ...] = tuple(range(2, 21))
    min_k: int = 4
    label_columns: tuple[str, ...] | None = None  # None: every categorical column with 2..200 values
    target: str | None = None  # numeric column (sales, sell-through): mean per cluster with CIs
    maps: tuple[str, ...] = ("tsne", "umap")
    n_per_cluster: int = 8
    n_classes_shown: int = 12
    dup_threshold: float = 0.97
    n_why_similar: int = 3
    gradcam_column: str | None = None  # fit a linear head on this column and show Grad-CAM overlays
    n_gradcam: int = 8
    seed: int = 0
    threads: int | None = 1  # OpenMP/BLAS cap for KMeans and projections (see sweep_k); None: all
    progress: bool = True


def label_columns(catalog: Catalog, max_values: int = 200) -> list[str]:
    """Catalog attribute columns that read as categories (2..max_values distinct values)."""
    out = []
    for c in catalog.attributes:
        s = catalog.df[c]
        if not pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            n = s.nunique(dropna=True)
            if 2 <= n <= max_values and pd.to_numeric(s, errors="coerce").notna().mean() < 0.9:
                out.append(c)
    return out


class _Report:
    """Accumulates HTML sections; every figure is inlined so the file stands alone."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def figure(self, fig: Any, caption: str = "") -> None:
        plt = cl.pyplot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        self._img(buf.getvalue(), "image/png", caption)

    def image(self, img: Any, caption: str = "") -> None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=88)  # photos: JPEG keeps the report small
        self._img(buf.getvalue(), "image/jpeg", caption)

    def _img(self, data: bytes, mime: str, caption: str) -> None:
        b64 = base64.b64encode(data).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:{mime};base64,{b64}" alt="{html.escape(caption)}">{cap}</figure>')

    def table(self, df: pd.DataFrame, float_format: str = "{:.3f}") -> None:
        self.parts.append(df.to_html(index=False, float_format=float_format.format, border=0, classes="t"))

    def html(self) -> str:
        style = ("body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}"
                 "img{max-width:100%;border:1px solid #ddd}figure{margin:12px 0}"
                 "figcaption{font-size:13px;color:#555}table.t{border-collapse:collapse;font-size:13px}"
                 "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}")
        body = "\n".join(self.parts)
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>")


class _Stages:
    """Logs each step to stderr (when progress is on) and records its wall time."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._name, self._t = "", 0.0

    def __call__(self, name: str, msg: str = "") -> None:
        self.end()
        self._name, self._t = name, time.perf_counter()
        if self.progress:
            print(f"[explore] {msg or name}", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self._name:
            self.seconds[self._name] = round(time.perf_counter() - self._t, 2)
        self._name = ""


def run_explore(catalog: Catalog, encoder: Encoder, out_dir: str | Path, config: ExploreConfig | None = None,
                cache_dir: str | Path | None = None, embeddings: np.ndarray | None = None) -> dict[str, Any]:
    """Explore `catalog` with `encoder`; writes report.html, summary.json, clusters.csv,
    near_duplicates.csv into `out_dir` and returns the summary."""
    from fashionlens.embed import DEFAULT_CACHE, embed_catalog_images

    cfg = config or ExploreConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stage = _Stages(cfg.progress)
    cols = list(cfg.label_columns) if cfg.label_columns is not None else label_columns(catalog)
    for c in cols + ([cfg.target] if cfg.target else []) + ([cfg.gradcam_column] if cfg.gradcam_column else []):
        catalog.column(c)  # unknown column: a clear KeyError before any work
    bad = [m for m in cfg.maps if m not in METHODS]
    if bad:
        raise InvalidInputError(f"unknown map method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if len(catalog) < 10:
        raise InvalidInputError(f"explore needs at least 10 items, the catalog has {len(catalog)}")
    if embeddings is None:
        stage("embed", f"embedding {len(catalog)} photos with {encoder.name}")
        catalog, X = embed_catalog_images(encoder, catalog, cache_dir if cache_dir is not None else DEFAULT_CACHE,
                                          progress=cfg.progress)  # photos that fail to decode are left out
    else:
        X = np.asarray(embeddings, dtype=np.float32)
    if len(X) != len(catalog):
        raise ValueError(f"{len(X)} embeddings for {len(catalog)} items")
    ids, images = catalog.ids, catalog.images
    rep = _Report(f"fashionlens explore — {len(catalog)} items, encoder {encoder.name}")
    rep.p(f"Catalog: {catalog.report.source}; {len(catalog)} items; label columns: {', '.join(cols) or 'none'}.")

    # ---- clusters --------------------------------------------------------------------------------
    stage("clusters", "KMeans k sweep")
    sweep = cl.sweep_k(X, cfg.ks, seed=cfg.seed, min_k=cfg.min_k, progress=cfg.progress, threads=cfg.threads)
    labels = sweep.labels_
    rep.h2("Clusters")
    rep.p(f"Chosen {sweep.reason}.")
    rep.figure(cl.plot_sweep(sweep), "inertia (elbow) and silhouette for each k")
    agreement = {c: cl.label_agreement(labels, catalog.column(c)) for c in cols}
    if agreement:
        rep.p("Agreement of the clusters with catalog labels (ARI: 0 = chance, 1 = identical partition; "
              "purity: share of items in their cluster's majority label).")
        rep.table(pd.DataFrame([{"column": c, **a} for c, a in agreement.items()]))
    sizes = np.bincount(labels, minlength=sweep.k)
    for c in cols:
        comp = cl.composition(labels, catalog.column(c), top=10)
        rep.figure(cl.plot_composition(comp, f"cluster composition by {c} (top 10 values)"), f"composition by {c}")
    target_table = None
    if cfg.target:
        target_table = cl.target_by_cluster(labels, catalog.column(cfg.target), seed=cfg.seed)
        rep.h2(f"{cfg.target} per cluster")
        rep.figure(cl.plot_target(target_table, cfg.target))
        rep.table(target_table)
    stage("grids", "photo grids")
    reps = cl.representatives(X, labels, sweep.centers_, cfg.n_per_cluster)
    rep.h2("Photos per cluster (nearest the centre)")
    top_lab = {c: _top_label(catalog.column(cols[0])[labels == c]) for c in range(sweep.k)} if cols else {}
    grid = groups_grid({f"{c} n={sizes[c]} {top_lab.get(c, '')}": [images[i] for i in reps[c]] for c in range(sweep.k)},
                       cfg.n_per_cluster, label="cluster ", thumb=80)
    rep.image(grid, "each row: one cluster, photos nearest its centre")
    if cols:
        y = pd.Series(catalog.column(cols[0])).astype(str)
        rng = np.random.default_rng(cfg.seed)
        classes = list(y.value_counts().index[: cfg.n_classes_shown])
        per_class = {f"{c} (n={(y == c).sum()})": [images[i] for i in rng.permutation(np.flatnonzero(y == c))[: cfg.n_per_cluster]] for c in classes}
        rep.h2(f"Photos per {cols[0]}")
        rep.image(groups_grid(per_class, cfg.n_per_cluster, thumb=80), f"random photos of the {len(classes)} largest classes")

    # ---- maps ------------------------------------------------------------------------------------
    frame = pd.DataFrame({"id": ids, "cluster": labels})
    first_coords = None
    for method in cfg.maps:
        stage(method, f"{method} map")
        coords = project(X, method, seed=cfg.seed, threads=cfg.threads)
        frame[f"{method}_x"], frame[f"{method}_y"] = coords[:, 0], coords[:, 1]
        first_coords = coords if first_coords is None else first_coords
        rep.h2(f"{method.upper()} map")
        rep.figure(plot_map(coords, labels.astype(str), f"{method.upper()} coloured by cluster", label="cluster"))
        for c in cols + ([cfg.target] if cfg.target else []):
            rep.figure(plot_map(coords, catalog.column(c), f"{method.upper()} coloured by {c}", label=c))
    if first_coords is not None:
        stage("thumbnail_map")
        rep.h2(f"Thumbnail map ({cfg.maps[0].upper()})")
        rep.image(thumbnail_map(first_coords, images, size=1800, thumb=56, seed=cfg.seed),
                  "photos at their map positions (one per cell, the one nearest the cell centre)")

    # ---- near duplicates -----------------------------------------------------------------------
    stage("near_duplicates")
    pairs = near_duplicate_pairs(X, cfg.dup_threshold, ids=ids)
    groups = duplicate_groups(pairs, len(X))
    rep.h2(f"Near-duplicates (cosine ≥ {cfg.dup_threshold})")
    rep.p(f"{len(pairs)} pairs in {len(groups)} groups.")
    if len(pairs):
        rep.table(pairs.head(50)[["id_i", "id_j", "cosine"]], "{:.4f}")
        top = pairs.head(10)
        order = [k for a, b in zip(top["i"], top["j"], strict=True) for k in (a, b)]
        flat, titles = [images[k] for k in order], [ids[k] for k in order]
        rep.image(image_grid(flat, titles, ncols=10, thumb=96), "the 10 most similar pairs, side by side")

    # ---- why similar ---------------------------------------------------------------------------
    if cfg.n_why_similar:
        stage("why_similar")
        _why_similar_section(rep, encoder, X, images, ids, cfg)

    # ---- Grad-CAM ------------------------------------------------------------------------------
    gradcam_info = None
    if cfg.gradcam_column:
        stage("gradcam", f"Grad-CAM of a linear head on {cfg.gradcam_column}")
        gradcam_info = _gradcam_section(rep, encoder, X, catalog, cfg)

    stage.end()
    summary = {
        "n_items": len(catalog), "encoder": encoder.name, "k": sweep.k,
        "silhouette": round(sweep.best_silhouette, 4), "elbow_k": sweep.elbow_k, "k_reason": sweep.reason,
        "ari": {c: round(a["ari"], 4) for c, a in agreement.items()},
        "agreement": {c: {m: round(v, 4) for m, v in a.items()} for c, a in agreement.items()},
        "cluster_sizes": sizes.tolist(), "near_duplicates": len(pairs), "duplicate_groups": len(groups),
        "dup_threshold": cfg.dup_threshold, "sweep": sweep.to_dict(),
        "target": None if target_table is None else {"column": cfg.target, "per_cluster": target_table.to_dict("records")},
        "gradcam": gradcam_info, "config": {k: v for k, v in cfg.to_dict().items() if k != "progress"},
        "seconds": round(time.perf_counter() - t0, 1), "stage_seconds": stage.seconds,
    }
    with atomic_write(out / "clusters.csv") as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_write(out / "near_duplicates.csv") as tmp:
        pairs.to_csv(tmp, index=False)
    with atomic_write(out / "report.html") as tmp:
        tmp.write_text(rep.html(), encoding="utf-8")
    write_json(out / "summary.json", summary)
    stage("done", f"done in {summary['seconds']} s -> {out / 'report.html'}")
    return summary


def _top_label(values: np.ndarray) -> str:
    if len(values) == 0:
        return ""
    s = pd.Series(values).astype(str).value_counts()
    return f"({s.index[0]} {s.iloc[0] / len(values):.0%})"


def _why_similar_section(rep: _Report, encoder: Encoder, X: np.ndarray, images: list[str], ids: list[str],
                         cfg: ExploreConfig) -> None:
    """Similarity maps for a few nearest-neighbour hits that are not near-duplicates."""
    from fashionlens.explore.similarity import encoder_feature_fn, why_similar

    try:
        fn = encoder_feature_fn(encoder)
    except ValueError as e:
        rep.h2("Why similar")
        rep.p(f"skipped: {e}")
        return
    rng = np.random.default_rng(cfg.seed)
    queries = rng.choice(len(X), size=min(cfg.n_why_similar, len(X)), replace=False)
    rep.h2("Why similar: regions that drive a search hit")
    rep.p("For a query photo A and its nearest neighbour B: each region of A coloured by its cosine to B's "
          "pooled embedding, and vice versa (red = the region that carries the match).")
    for q in queries:
        sims = X @ X[q]
        sims[q] = -np.inf
        sims[sims >= cfg.dup_threshold] = -np.inf  # show a real hit, not a copy
        b = int(np.argmax(sims))
        img = why_similar(encoder, images[q], images[b], title=f"{ids[q]} vs {ids[b]}", feature_fn=fn)
        rep.image(img, f"query {ids[q]} and its nearest neighbour {ids[b]}")


def _gradcam_section(rep: _Report, encoder: Encoder, X: np.ndarray, catalog: Catalog, cfg: ExploreConfig) -> dict:
    """Linear head on `cfg.gradcam_column` over the encoder's network; Grad-CAM on its last conv layer."""
    from fashionlens.explore.gradcam import (
        cam_mass_inside,
        compute_cams,
        fit_linear_head,
        last_conv_layer,
        overlay,
        product_masks,
    )

    rep.h2(f"Grad-CAM: a linear {cfg.gradcam_column} head")
    model = getattr(encoder, "model", None)
    layer = last_conv_layer(model) if model is not None else None
    if layer is None or encoder.preprocess is None:
        rep.p(f"skipped: encoder '{encoder.name}' exposes no CNN (.model with a Conv2d/BatchNorm2d layer)")
        return {"skipped": True}
    y = pd.Series(catalog.column(cfg.gradcam_column)).astype(str).to_numpy()
    tr, te = catalog.split(0.2, seed=cfg.seed, stratify=cfg.gradcam_column)
    pos = {v: i for i, v in enumerate(catalog.ids)}
    itr, ite = [pos[i] for i in tr.ids], [pos[i] for i in te.ids]
    head, classes, clf = fit_linear_head(model, X[itr], y[itr])
    acc = float((clf.predict(X[ite]) == y[ite]).mean())
    rng = np.random.default_rng(cfg.seed)
    show = rng.choice(ite, size=min(cfg.n_gradcam, len(ite)), replace=False)
    pred = [classes.index(p) for p in clf.predict(X[show])]
    imgs = [catalog.images[i] for i in show]
    cams, rgb = compute_cams(head, layer, imgs, pred, encoder.preprocess)
    inside = cam_mass_inside(cams, product_masks(rgb))
    area = product_masks(rgb).reshape(len(rgb), -1).mean(axis=1)
    tiles, titles = [], []
    for k, i in enumerate(show):
        tiles += [imgs[k], overlay(rgb[k], cams[k])]
        titles += [f"true {y[i]}", f"pred {classes[pred[k]]} ({inside[k]:.0%} on product)"]
    rep.p(f"Logistic regression on the embeddings copied into an nn.Linear over the network; held-out accuracy "
          f"{acc:.3f} on {len(ite)} items. Grad-CAM for the predicted class; 'on product' is the share of the "
          f"map's mass on non-white pixels (the product covers {area.mean():.0%} of the frame on average).")
    rep.image(image_grid(tiles, titles, ncols=4, thumb=160,
                         highlight=[None if j % 2 == 0 else bool(classes[pred[j // 2]] == y[show[j // 2]])
                                    for j in range(len(tiles))]),
              "photo | Grad-CAM overlay (frame: green = correct prediction, red = wrong)")
    return {"column": cfg.gradcam_column, "test_accuracy": round(acc, 4), "n_classes": len(classes),
            "mass_on_product": round(float(inside.mean()), 4), "product_area": round(float(area.mean()), 4)}
