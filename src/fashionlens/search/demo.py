"""The demo: index a sample of a real catalog, evaluate on held-out items, query, save a gallery."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fashionlens.utils import write_json

EXAMPLE_QUERIES = ("black leather ankle boots", "red floral summer dress", "men's blue denim jeans")


def run_demo(catalog_path: str | Path, out: str | Path, n_train: int = 8000, n_test: int = 2000,
             seed: int = 0, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Sized so the whole run ends in a few minutes on 2 cores (embeddings are cached for reruns)."""
    from fashionlens.catalog import CatalogError, load_catalog
    from fashionlens.explore.grids import save_grid
    from fashionlens.search.evaluate import evaluate_retrieval
    from fashionlens.search.index import build_index

    t0 = time.time()
    path = Path(catalog_path)
    if not path.exists():
        raise CatalogError(
            f"catalog not found: {path}. Use ../shared/data/myntra beside the clone, or download the public "
            "Kaggle set 'Fashion Product Images (Small)' and pass --catalog to its folder (styles.csv + images/)."
        )
    out = Path(out)
    echo(f"[1/4] importing {path}")
    catalog = load_catalog(path, progress=True)
    echo(f"      {catalog.report.summary()}")
    rest, held_out = catalog.split(min(n_test, len(catalog) // 5), seed=seed)
    train = rest.sample(n_train, seed=seed)
    echo(f"[2/4] indexing {len(train)} items (embed photos + names, align the towers)")
    index = build_index(train, out / "index")
    align = index.info.get("alignment", {})
    how = "reused the cached alignment, trained" if align.get("reused") else "aligned"
    echo(f"      {how} in {align.get('seconds', 0):.0f} s (best epoch {align.get('best_epoch')})")
    echo(f"[3/4] evaluating {len(held_out)} held-out items (never indexed): value [95% CI] (chance)")
    metrics = evaluate_retrieval(index.encoder, held_out, gallery=index)
    alone = evaluate_retrieval(index.encoder, held_out, progress=False)
    for title, res in ((f"whole gallery: {len(train)} index photos as distractors + the held-out ones", metrics),
                       ("held-out gallery: the held-out photos alone", alone)):
        echo(f"      {title} ({res['gallery']['size']} photos)")
        for task in ("text_to_image", "image_to_image"):
            echo(f"        {task.replace('_to_', '→')}: " + _line(res[task]))
    echo("[4/4] example queries")
    examples = {}
    images, titles = [], []
    for q in EXAMPLE_QUERIES:
        hits = index.search(q, k=5)
        examples[q] = hits
        echo(f"      '{q}': " + "; ".join(f"{h['text']} ({h['score']:.2f})" for h in hits[:3]))
        images += [h["image"] for h in hits]
        titles += [f"{q[:22]}… #{i + 1}" if i == 0 else f"#{i + 1} {h.get('articleType', '')}" for i, h in enumerate(hits)]
    gallery = out / "gallery.png"
    save_grid(images, gallery, titles=titles, ncols=5)
    summary = {"metrics": metrics, "metrics_held_out_gallery": alone, "n_indexed": len(train), "n_held_out": len(held_out),
               "examples": {q: [h["id"] for h in hs] for q, hs in examples.items()},
               "seconds": round(time.time() - t0, 1)}
    write_json(out / "metrics.json", summary)
    echo(f"done in {summary['seconds']:.0f} s. Gallery: {gallery}  Metrics: {out / 'metrics.json'}")
    echo(f"serve it: fashionlens serve {out / 'index'}")
    return summary


def _line(d: dict[str, Any]) -> str:
    """`recall@10=0.412 [0.390, 0.433] (0.0010)` for every metric with a CI."""
    return "  ".join(f"{m}={d[m]:.3f} [{lo:.3f}, {hi:.3f}] ({d['chance'][m]:.4f})" for m, (lo, hi) in d["ci95"].items())
