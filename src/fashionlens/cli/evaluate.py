"""`fashionlens evaluate retrieval`."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table

app = typer.Typer(help="Judge models on data they never saw.", no_args_is_help=True)


@app.command("retrieval")
@friendly_errors
def retrieval_cmd(
    index: Path = typer.Argument(..., help="Index directory (its encoder is evaluated)."),
    queries: Path = typer.Option(..., "--queries", help="A catalog the index never saw."),
    limit: int | None = typer.Option(None, help="Use the first N items of the query catalog."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Text→image Recall@1/5/10, MRR, NDCG@10 over the whole query gallery, and image→image precision@10."""
    from fashionlens.catalog import load_catalog
    from fashionlens.search.evaluate import evaluate_retrieval
    from fashionlens.search.index import SearchIndex

    idx = SearchIndex(index)
    cat = load_catalog(queries, limit=limit)
    overlap = len(set(cat.ids) & set(idx.catalog.ids))
    if overlap:
        typer.echo(f"warning: {overlap} query items are also in the index (not a held-out evaluation)", err=True)
    res = evaluate_retrieval(idx.encoder, cat)
    if as_json:
        print_json(res)
        return
    rows = [{"task": task, "metric": k, "value": v} for task, d in res.items() for k, v in d.items()]
    print_table(rows, title=f"retrieval on {len(cat)} held-out items")
