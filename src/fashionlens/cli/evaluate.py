"""`fashionlens evaluate retrieval`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table

app = typer.Typer(help="Judge models on data they never saw.", no_args_is_help=True)


class Gallery(str, Enum):
    """What the held-out queries are ranked against."""

    whole = "whole"
    queries = "queries"


@app.command("retrieval")
@friendly_errors
def retrieval_cmd(
    index: Path = typer.Argument(..., help="Index directory (its encoder is evaluated)."),
    queries: Path = typer.Option(..., "--queries", help="A catalog the index never saw."),
    gallery: Gallery = typer.Option(Gallery.whole, "--gallery", help="whole: rank the held-out items against every index "
                                "photo plus themselves (index photos are distractors); queries: the held-out items alone."),
    limit: int | None = typer.Option(None, help="Use the first N items of the query catalog."),
    as_json: bool = typer.Option(False, "--json", help="Values plus ci95 (low, high) and chance per metric."),
) -> None:
    """Text→image Recall@1/5/10, MRR, NDCG@10 and image→image P@10, with 95% bootstrap CIs and chance."""
    from fashionlens.catalog import load_catalog
    from fashionlens.search.evaluate import evaluate_retrieval
    from fashionlens.search.index import SearchIndex

    idx = SearchIndex(index)
    cat = load_catalog(queries, limit=limit)
    overlap = len(set(cat.ids) & set(idx.catalog.ids))
    if overlap:
        typer.echo(f"warning: {overlap} query items are also in the index (not a held-out evaluation); "
                   "their index copies are left out of the gallery", err=True)
    res = evaluate_retrieval(idx.encoder, cat, gallery=idx if gallery is Gallery.whole else None)
    if as_json:
        print_json(res)
        return
    rows = [{"task": task, "metric": m, "value": d[m], "95% CI": f"[{lo:.4f}, {hi:.4f}]", "chance": d["chance"][m]}
            for task, d in res.items() if task != "gallery" for m, (lo, hi) in d["ci95"].items()]
    g = res["gallery"]
    print_table(rows, title=f"retrieval of {g['n_queries']} held-out items among {g['size']} photos "
                f"({g['n_distractors']} index photos as distractors)")
