"""`fashionlens explore CATALOG --out DIR`: clusters, maps, grids, near-duplicates in one HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json
from fashionlens.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    """Attach the top-level `explore` command."""

    @app.command("explore")
    @friendly_errors
    def explore(
        catalog: Path = typer.Argument(..., help="Catalog: Kaggle-layout folder, CSV/Parquet table or labelled folders."),
        out: Path = typer.Option(..., "--out", help="Folder for report.html, summary.json, clusters.csv."),
        encoder: str = typer.Option("efficientnet-lite0", "--encoder", help="Image encoder (registry name or run:<dir>)."),
        limit: int | None = typer.Option(None, "--limit", help="Explore a seeded random sample of N items."),
        target: str | None = typer.Option(None, "--target", help="Numeric column (sales, sell-through) per cluster."),
        columns: str | None = typer.Option(None, "--columns", help="Comma-separated label columns (default: all categorical)."),
        k_min: int = typer.Option(2, "--k-min", help="Smallest k of the KMeans sweep."),
        k_max: int = typer.Option(20, "--k-max", help="Largest k of the KMeans sweep."),
        maps: str = typer.Option("tsne,umap", "--maps", help="Projections to draw: tsne, umap, pca."),
        dup_threshold: float = typer.Option(0.97, "--dup-threshold", help="Cosine at or above which photos are near-duplicates."),
        gradcam: str | None = typer.Option(None, "--gradcam", help="Fit a linear head on this column and show Grad-CAM overlays."),
        seed: int = typer.Option(0, "--seed"),
        cache: Path | None = typer.Option(None, "--cache", help="Embedding cache folder (default: the user cache)."),
        as_json: bool = typer.Option(False, "--json", help="Print summary.json to stdout."),
    ) -> None:
        """Explore a catalog: KMeans clusters, t-SNE/UMAP maps, photo grids, near-duplicates, Grad-CAM."""
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from fashionlens.catalog import load_catalog
        from fashionlens.encoders.registry import create
        from fashionlens.explore.report import ExploreConfig, run_explore

        if k_min < 2 or k_max < k_min:
            raise InvalidInputError(f"need 2 <= --k-min <= --k-max (got {k_min}, {k_max})")
        cat = load_catalog(catalog, check_images=False)
        if limit is not None:
            cat = cat.sample(limit, seed=seed)
        cfg = ExploreConfig(
            ks=tuple(range(k_min, k_max + 1)),
            label_columns=tuple(c.strip() for c in columns.split(",") if c.strip()) if columns else None,
            target=target, maps=tuple(m.strip() for m in maps.split(",") if m.strip()),
            dup_threshold=dup_threshold, gradcam_column=gradcam, seed=seed, progress=not as_json,
        )
        summary = run_explore(cat, create(encoder), out, cfg, cache_dir=cache)
        if as_json:
            print_json(summary)
            return
        typer.echo(f"{summary['n_items']} items, k={summary['k']} (silhouette {summary['silhouette']:.3f}), "
                   f"{summary['near_duplicates']} near-duplicate pairs")
        for col, ari in summary["ari"].items():
            typer.echo(f"  ARI vs {col}: {ari:.3f}")
        typer.echo(f"report: {out / 'report.html'}")
