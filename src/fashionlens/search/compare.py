"""Compare N retrieval models on one test catalog: text→image, image→text and image→image over
the whole gallery, with chance levels, 95% bootstrap CIs, paired tests and per-category recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.catalog.core import Catalog
from fashionlens.embed import DEFAULT_CACHE, embed_images, embed_texts
from fashionlens.encoders.base import Encoder
from fashionlens.evaluation.metrics import (
    chance_at_k,
    metrics_from_ranks,
    relevance_metrics,
    target_ranks,
    topk,
)
from fashionlens.evaluation.statistics import bootstrap_ci

RANK_METRICS = ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "map@10")


def per_query_rank_values(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query values whose means are `metrics_from_ranks`' metrics (the bootstrap's units)."""
    r = np.asarray(ranks)
    return {
        "recall@1": (r < 1).astype(float), "recall@5": (r < 5).astype(float), "recall@10": (r < 10).astype(float),
        "mrr": 1.0 / (r + 1), "ndcg@10": np.where(r < 10, 1.0 / np.log2(r + 2), 0.0),
        "map@10": np.where(r < 10, 1.0 / (r + 1), 0.0),
    }


@dataclass
class RetrievalReport:
    """One model's scores: metrics[direction][metric] = (value, ci_low, ci_high)."""

    name: str
    metrics: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, tuple[float, int]] = field(default_factory=dict)
    per_query: dict[str, np.ndarray] = field(default_factory=dict)  # t2i recall@10 etc., for paired tests
    seconds: float | None = None

    def value(self, direction: str, metric: str) -> float:
        return self.metrics[direction][metric][0]


def evaluate_embeddings(name: str, image_emb: np.ndarray, text_emb: np.ndarray | None,
                        labels: Sequence | None = None, categories: Sequence | None = None,
                        t2i_ranks: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
                        min_category: int = 20) -> RetrievalReport:
    """Score paired rows (row i's text describes photo i) over the whole gallery.

    `t2i_ranks` overrides the text→image ranks (e.g. after a re-ranker). Image→image: a neighbour
    is relevant when it shares the query's label (e.g. articleType); the query itself is excluded.
    """
    n = len(image_emb)
    rep = RetrievalReport(name)
    directions: dict[str, np.ndarray] = {}
    if text_emb is not None:
        directions["text→image"] = t2i_ranks if t2i_ranks is not None else target_ranks(text_emb, image_emb, np.arange(n))
        directions["image→text"] = target_ranks(image_emb, text_emb, np.arange(n))
    for d, ranks in directions.items():
        point = metrics_from_ranks(ranks, n)
        vals = per_query_rank_values(ranks)
        rep.metrics[d] = {m: (point[m], *bootstrap_ci(vals[m], n_boot, seed)) for m in RANK_METRICS}
        rep.chance[d] = chance_at_k(10, n)
        if d == "text→image":
            rep.per_query = vals
    if labels is not None:
        lab = np.asarray(labels).astype(str)
        k = min(10, n - 1)
        nb = topk(image_emb, image_emb, k, exclude_self=True)
        rel = lab[nb] == lab[:, None]
        _, inv, counts = np.unique(lab, return_inverse=True, return_counts=True)
        n_rel = counts[inv] - 1
        point = relevance_metrics(rel, n_rel, k)
        prec = rel.mean(1)
        ap = (np.cumsum(rel, 1) / np.arange(1, k + 1) * rel).sum(1) / np.maximum(np.minimum(n_rel, k), 1e-12)
        rep.metrics["image→image"] = {f"precision@{k}": (point[f"precision@{k}"], *bootstrap_ci(prec, n_boot, seed)),
                                      f"map@{k}": (point[f"map@{k}"], *bootstrap_ci(ap, n_boot, seed))}
        rep.chance["image→image"] = float(np.sum((counts / n) * (counts - 1) / max(n - 1, 1)))
    if categories is not None and "text→image" in directions:
        cat = np.asarray(categories).astype(str)
        hit = directions["text→image"] < 10
        for c in np.unique(cat):
            m = cat == c
            if m.sum() >= min_category:
                rep.per_category[c] = (float(hit[m].mean()), int(m.sum()))
    return rep


def evaluate_encoder(encoder: Encoder, catalog: Catalog, name: str | None = None, label_column: str = "articleType",
                     category_column: str = "masterCategory", cache_dir: str | Path | None = DEFAULT_CACHE,
                     n_boot: int = 1000, progress: bool = False) -> RetrievalReport:
    """Embed the catalog (cached) and score the encoder; texts only if it has a text tower."""
    img = embed_images(encoder, catalog, cache_dir, progress=progress)
    txt = embed_texts(encoder, catalog, cache_dir, progress=progress) if "text" in encoder.modalities else None
    df = catalog.df
    return evaluate_embeddings(name or encoder.name, img, txt,
                               df[label_column].to_numpy() if label_column in df else None,
                               df[category_column].to_numpy() if category_column in df else None, n_boot=n_boot)


def paired_vs(report: RetrievalReport, baseline: RetrievalReport, metric: str = "recall@10",
              n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of text→image `metric` (model - baseline) on the same queries."""
    from fashionlens.evaluation.statistics import paired_bootstrap

    # the test works on losses (lower = better): the loss of a query is minus its score
    t = paired_bootstrap(-report.per_query[metric], -baseline.per_query[metric], n_boot=n_boot, seed=seed)
    return {"diff": -t.diff, "ci_low": -t.ci95[1], "ci_high": -t.ci95[0], "p_value": t.p_value}


def _fmt(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def markdown_table(reports: Sequence[RetrievalReport], baseline: str | None = None,
                   metrics: Mapping[str, Sequence[str]] | None = None) -> str:
    """One row per model: value [95% CI] per metric; optional paired diff vs `baseline`."""
    metrics = metrics or {"text→image": ("recall@1", "recall@10", "mrr", "ndcg@10"),
                          "image→text": ("recall@10",), "image→image": ("precision@10",)}
    cols = [(d, m) for d, ms in metrics.items() for m in ms]
    base = next((r for r in reports if r.name == baseline), None)
    head = ["model", *(f"{d} {m}" for d, m in cols)] + (["Δ t→i R@10 vs " + baseline + " [CI], p"] if base else [])
    head.append("train s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [r.name] + [_fmt(r.metrics[d][m]) if d in r.metrics and m in r.metrics[d] else "n/a" for d, m in cols]
        if base:
            if r is base or not r.per_query:
                cells.append("—")
            else:
                p = paired_vs(r, base)
                cells.append(f"{p['diff']:+.3f} [{p['ci_low']:+.3f}, {p['ci_high']:+.3f}], p={p['p_value']:.3g}")
        cells.append("—" if r.seconds is None else f"{r.seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    chance = next((r.chance for r in reports if "text→image" in r.chance), reports[0].chance if reports else {})
    lines.append("")
    lines.append("Chance: " + ", ".join(f"{d} {'R@10' if d != 'image→image' else 'P@10'} = {c:.4f}"
                                        for d, c in chance.items()))
    return "\n".join(lines)


def per_category_table(reports: Sequence[RetrievalReport]) -> str:
    """Text→image Recall@10 per category (rows) and model (columns)."""
    cats = sorted({c for r in reports for c in r.per_category}, key=lambda c: -max(
        r.per_category.get(c, (0, 0))[1] for r in reports))
    lines = ["| category | n | " + " | ".join(r.name for r in reports) + " |", "|" + "---|" * (len(reports) + 2)]
    for c in cats:
        n = max(r.per_category.get(c, (0, 0))[1] for r in reports)
        vals = [f"{r.per_category[c][0]:.3f}" if c in r.per_category else "n/a" for r in reports]
        lines.append(f"| {c} | {n} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def save_tsne(embeddings: np.ndarray, labels: Sequence, out: str | Path, max_points: int = 2000,
              seed: int = 0, title: str = "") -> Path:
    """t-SNE map of embeddings coloured by label (the 10 largest labels; the rest grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from fashionlens.utils import save_figure

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(embeddings), size=min(max_points, len(embeddings)), replace=False)
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(idx) - 1)).fit_transform(
        np.asarray(embeddings)[idx])
    lab = np.asarray(labels).astype(str)[idx]
    names, counts = np.unique(lab, return_counts=True)
    top = names[np.argsort(-counts)][:10]
    fig, ax = plt.subplots(figsize=(7, 6))
    other = ~np.isin(lab, top)
    ax.scatter(xy[other, 0], xy[other, 1], s=4, c="lightgrey", label="other")
    for i, name in enumerate(top):
        m = lab == name
        ax.scatter(xy[m, 0], xy[m, 1], s=5, color=plt.cm.tab10(i), label=name)
    ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set(title=title or "t-SNE of test image embeddings", xticks=[], yticks=[])
    return save_figure(fig, out)


def save_hits_grid(catalog: Catalog, text_emb: np.ndarray, image_emb: np.ndarray, out: str | Path,
                   n_queries: int = 4, seed: int = 0, heading: str | None = None) -> Path:
    """PNG: for a few text queries, their top-5 photos; the query's own photo is highlighted."""
    from fashionlens.catalog.images import open_image
    from fashionlens.explore.grids import save_grid

    rng = np.random.default_rng(seed)
    q = rng.choice(len(catalog), size=min(n_queries, len(catalog)), replace=False)
    top = topk(text_emb[q], image_emb, 5)
    images, titles, hl = [], [], []
    for qi, row in zip(q, top, strict=True):
        for j, g in enumerate(row):
            images.append(open_image(catalog.images[g]))
            titles.append((f"'{catalog.texts[qi][:30]}' " if j == 0 else "") + f"#{j + 1}")  # ASCII: any font
            hl.append(bool(g == qi))
    return save_grid(images, out, titles=titles, ncols=5, highlight=hl, heading=heading)


def report_to_dict(rep: RetrievalReport) -> dict[str, Any]:
    """JSON-friendly view (without per-query arrays)."""
    return {"name": rep.name, "metrics": {d: {m: list(v) for m, v in ms.items()} for d, ms in rep.metrics.items()},
            "chance": rep.chance, "per_category": {c: list(v) for c, v in rep.per_category.items()},
            "seconds": rep.seconds}
