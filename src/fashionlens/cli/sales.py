"""`fashionlens sales ...`: fit sales / sell-through models and compare feature sets."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table

app = typer.Typer(help="Forecast sales and sell-through of products from their photo and metadata.",
                  no_args_is_help=True)

CATALOG_HELP = "VISUELLE folder or sales.csv, H&M folder, listings table, or any catalog load_catalog reads"
SPEC_HELP = "comma list of catalog columns and 'image' (the photo embedding of --encoder)"


@app.command("fit")
@friendly_errors
def fit(
    catalog: str = typer.Argument(..., help=CATALOG_HELP),
    target: str = typer.Option(..., "--target", help="target column(s); 'weekly' = the week_* curve; 'total' for VISUELLE"),
    features: str = typer.Option(..., "--features", help=SPEC_HELP),
    model: str = typer.Option("ridge", "--model", help="knn | ridge | rf | gbr | lgbm"),
    hpo: int = typer.Option(0, "--hpo", help="Optuna trials (5-fold CV on the train items; resumable in OUT/optuna.db)"),
    out: Path = typer.Option(..., "--out", help="run directory for metrics.json, predictions.csv, config.json (the run manifest)"),
    encoder: str = typer.Option("efficientnet-lite0", "--encoder"),
    layout: str = typer.Option("auto", "--layout", help="auto | visuelle | hm | listings | catalog"),
    task: str = typer.Option("auto", "--task", help="auto | regression | classification"),
    test_where: list[str] = typer.Option(None, "--test-where", help="COL=V1,V2: test on these items (e.g. season=SS19,AW19)"),
    test_size: float = typer.Option(0.25, "--test-size", help="random test share when --test-where is not given"),
    start: str = typer.Option(None, "--start", help="H&M: first day of the sales window"),
    end: str = typer.Option(None, "--end", help="H&M: last day of the sales window"),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="embedding cache (default: the fashionlens cache)"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Fit a model on the train items and score it (and the baselines) on the held-out items."""
    from fashionlens.sales.run import SalesFitConfig, fit_sales

    cfg = SalesFitConfig(catalog=catalog, target=target, features=features, model=model, hpo=hpo, encoder=encoder,
                         layout=layout, task=task, test_where=list(test_where or []), test_size=test_size,
                         start=start, end=end, cache_dir=str(cache_dir) if cache_dir else None, seed=seed)
    res = fit_sales(cfg, out, progress=True)
    if json_out:
        print_json({k: res[k] for k in ("target", "task", "n_test", "rows")})
    else:
        print_table(res["rows"], title=f"{res['target']} ({res['task']}): {res['n_train']} train / {res['n_test']} test items")
        typer.echo(f"wrote {out}/metrics.json, predictions.csv, config.json")


@app.command("compare")
@friendly_errors
def compare(
    catalog: str = typer.Argument(..., help=CATALOG_HELP),
    target: str = typer.Option(..., "--target"),
    a: str = typer.Option(..., "--a", help="feature SPEC of model A: " + SPEC_HELP),
    b: str = typer.Option(..., "--b", help="feature SPEC of model B"),
    model: str = typer.Option("ridge", "--model", help="knn | ridge | rf | gbr | lgbm"),
    metric: str = typer.Option(None, "--metric", help="wape | mae (regression), brier | error (classification)"),
    encoder: str = typer.Option("efficientnet-lite0", "--encoder"),
    layout: str = typer.Option("auto", "--layout"),
    task: str = typer.Option("auto", "--task"),
    test_where: list[str] = typer.Option(None, "--test-where", help="COL=V1,V2: test on these items"),
    test_size: float = typer.Option(0.25, "--test-size"),
    start: str = typer.Option(None, "--start"),
    end: str = typer.Option(None, "--end"),
    n_boot: int = typer.Option(2000, "--n-boot", help="bootstrap resamples (and permutations)"),
    cache_dir: Path = typer.Option(None, "--cache-dir"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Does feature set A beat B? Paired bootstrap over the test items (diff = A - B, 95% CI, p-value)."""
    from fashionlens.sales.run import SalesCompareConfig, compare_sales

    cfg = SalesCompareConfig(catalog=catalog, target=target, a=a, b=b, model=model, metric=metric, encoder=encoder,
                             layout=layout, task=task, test_where=list(test_where or []), test_size=test_size,
                             start=start, end=end, n_boot=n_boot, cache_dir=str(cache_dir) if cache_dir else None,
                             seed=seed)
    res = compare_sales(cfg, progress=True)
    if json_out:
        print_json(res)
        return
    print_table([{"features": res["a"], res["metric"]: res["metric_a"]},
                 {"features": res["b"], res["metric"]: res["metric_b"]}],
                title=f"{res['target']} with {model}, {res['n_test']} test items")
    lo, hi = res["ci95"]
    verdict = ("A is better" if res["diff"] < 0 else "B is better") if res["p_value"] < 0.05 else "no significant difference"
    typer.echo(f"diff (A - B) = {res['diff']:+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}], p = {res['p_value']:.4f} "
               f"(permutation p = {res['p_permutation']:.4f}): {verdict} at the 5% level")
