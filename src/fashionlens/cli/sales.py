"""`fashionlens sales ...`: fit sales / sell-through models and compare feature sets."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table

app = typer.Typer(help="Forecast sales and sell-through of products from their photo and metadata.",
                  no_args_is_help=True)

CATALOG_HELP = "VISUELLE folder or sales.csv, H&M folder, listings table, or any catalog load_catalog reads"
SPEC_HELP = "comma list of catalog columns and 'image' (the photo embedding of --encoder)"


def _load(catalog: str, layout: str, start: str | None, end: str | None):
    from fashionlens.sales.data import detect_layout, load_sales_catalog

    kind = detect_layout(catalog) if layout == "auto" else layout
    kw = {k: v for k, v in (("start", start), ("end", end)) if v} if kind == "hm" else {}
    return load_sales_catalog(catalog, kind, **kw), kind


def _split(cat, test_where: list[str] | None, test_size: float, seed: int):
    from fashionlens.sales.forecast import split_catalog
    from fashionlens.search.filters import parse_filters

    where = {k: v.split(",") for k, v in parse_filters(test_where).items()}
    for col in where:
        cat.column(col)
    return split_catalog(cat, test_where=where or None, test_size=test_size, seed=seed)


def _encoder(specs, name: str):
    if not any(s.image for s in specs):
        return None
    from fashionlens.encoders.registry import create

    return create(name)


@app.command("fit")
@friendly_errors
def fit(
    catalog: str = typer.Argument(..., help=CATALOG_HELP),
    target: str = typer.Option(..., "--target", help="target column(s); 'weekly' = the week_* curve; 'total' for VISUELLE"),
    features: str = typer.Option(..., "--features", help=SPEC_HELP),
    model: str = typer.Option("ridge", "--model", help="knn | ridge | rf | gbr | lgbm"),
    hpo: int = typer.Option(0, "--hpo", help="Optuna trials (5-fold CV on the train items; resumable in OUT/optuna.db)"),
    out: Path = typer.Option(..., "--out", help="run directory for metrics.json, predictions.csv, config.json"),
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
    import pandas as pd

    from fashionlens.embed import DEFAULT_CACHE
    from fashionlens.sales.forecast import FeatureSpec, evaluate, resolve_target
    from fashionlens.utils import atomic_write, write_json

    cat, kind = _load(catalog, layout, start, end)
    spec = FeatureSpec.parse(features)
    tgt = resolve_target(cat, target, task)
    train, test = _split(cat, test_where, test_size, seed)
    out.mkdir(parents=True, exist_ok=True)
    res = evaluate(cat, tgt, spec, model, train, test, encoder=_encoder([spec], encoder),
                   cache_dir=cache_dir or DEFAULT_CACHE, hpo=hpo, study_path=out / "optuna.db" if hpo else None,
                   seed=seed, progress=True)
    y, pred = tgt.values[test], res["predictions"]
    preds = pd.DataFrame({"id": cat.df["id"].iloc[test].to_numpy()})
    for j, col in enumerate(tgt.columns):
        preds[col] = y if y.ndim == 1 else y[:, j]
        preds[f"pred_{col}"] = pred if pred.ndim == 1 else pred[:, j]
    with atomic_write(out / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    # no pickled model (project rule): config.json has everything needed to refit it exactly
    write_json(out / "config.json", {"catalog": str(Path(catalog).resolve()), "layout": kind, "target": target,
                                     "task": tgt.task, "features": str(spec), "model": model, "encoder": encoder,
                                     "params": res["params"], "hpo_trials": hpo, "seed": seed,
                                     "test_where": test_where or [], "test_size": test_size,
                                     "n_train": len(train), "n_test": len(test)})
    write_json(out / "metrics.json", {"target": tgt.name, "task": tgt.task, "n_train": len(train),
                                      "n_test": len(test), "rows": res["rows"]})
    if json_out:
        print_json({"target": tgt.name, "task": tgt.task, "n_test": len(test), "rows": res["rows"]})
    else:
        print_table(res["rows"], title=f"{tgt.name} ({tgt.task}): {len(train)} train / {len(test)} test items")
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
    from fashionlens.embed import DEFAULT_CACHE
    from fashionlens.sales.forecast import FeatureSpec, resolve_target
    from fashionlens.sales.forecast import compare as run_compare

    cat, _ = _load(catalog, layout, start, end)
    sa, sb = FeatureSpec.parse(a), FeatureSpec.parse(b)
    tgt = resolve_target(cat, target, task)
    train, test = _split(cat, test_where, test_size, seed)
    res = run_compare(cat, tgt, sa, sb, model, train, test, metric=metric, encoder=_encoder([sa, sb], encoder),
                      cache_dir=cache_dir or DEFAULT_CACHE, n_boot=n_boot, seed=seed, progress=True)
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
