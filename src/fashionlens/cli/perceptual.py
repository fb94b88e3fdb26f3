"""`fashionlens perceptual ...`: similarity triplets, 2AFC evaluation, alignment training, annotation."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table
from fashionlens.errors import InvalidInputError

app = typer.Typer(help="Perceptual alignment on 'which looks more similar' triplets (2AFC).",
                  no_args_is_help=True)


@app.command("triplets")
@friendly_errors
def triplets_cmd(
    catalog: Path = typer.Argument(..., help="catalog folder or table"),
    out: Path = typer.Option(..., "--out", help="CSV to write (NIGHTS layout, source=proxy)"),
    n: int = typer.Option(2000, "--n", help="number of triplets"),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Mine PROXY triplets from catalog labels (same articleType+colour vs same articleType, ...)."""
    from fashionlens.catalog import load_catalog
    from fashionlens.perceptual.evaluate import mine_proxy_triplets, save_triplets

    t = mine_proxy_triplets(load_catalog(catalog, check_images=False), n=n, seed=seed)
    save_triplets(t, out)
    if json_out:
        print_json({"triplets": str(out), "n": len(t), "source": t.source})
        return
    typer.echo(f"wrote {len(t)} proxy triplets (from catalog labels, not human judgements) to {out}")


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    encoder: list[str] = typer.Option(..., "--encoder", help="encoder name or run:<dir>; repeat for an ensemble"),
    triplets: Path = typer.Option(..., "--triplets", help="triplet CSV (NIGHTS layout or anchor,a,b,choice)"),
    lighting: float = typer.Option(0.0, "--lighting", help="also score under the SYNTHETIC relighting proxy "
                                   "(lighting.relight: colour temperature, exposure, highlights, flips) of this strength"),
    split: str = typer.Option("", "--split", help="only rows whose split column has this value"),
    json_out: bool = typer.Option(False, "--json", help="print JSON (2afc, ci95, n, human_ceiling, source)"),
) -> None:
    """Vote-weighted 2AFC accuracy of an encoder with a bootstrap 95% CI and the human ceiling."""
    from fashionlens.encoders.registry import create
    from fashionlens.perceptual.evaluate import evaluate_encoder, load_triplets

    t = load_triplets(triplets)
    if split:
        t = t.subset(t.split == split)
        if not len(t):
            raise InvalidInputError(f"{triplets}: no rows with split '{split}'")
    encs = [create(e) for e in encoder]
    enc = encs if len(encs) > 1 else encs[0]
    res = evaluate_encoder(enc, t)
    res["encoder"] = "+".join(encoder)
    if lighting > 0:
        res["lighting"] = evaluate_encoder(enc, t, lighting=lighting)
    if json_out:
        print_json(res)
        return
    rows = [{"condition": "as is", "2afc": res["2afc"], "ci95": _ci(res), "n": res["n"]}]
    if lighting > 0:
        lit = res["lighting"]
        rows.append({"condition": f"relit proxy x{lighting:g}", "2afc": lit["2afc"], "ci95": _ci(lit), "n": lit["n"]})
    print_table(rows, title=f"{res['encoder']} on {res['source']} triplets "
                            f"(human ceiling {res['human_ceiling']:.3f})")


def _ci(r: dict) -> str:
    return f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"


@app.command("train")
@friendly_errors
def train_cmd(
    config: Path = typer.Argument(..., help="YAML with PerceptualConfig fields (triplets, out, encoders, mode, ...)"),
    eval_split: str = typer.Option("", "--eval-split", help="also score on held-out triplets: 'reference' "
                                   "(hold out reference images) or 'column' (the CSV's split column)"),
    json_out: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Train an MLP head or LoRA on every triplet outside validation; writes a run dir usable as
    `run:<dir>`. With --eval-split: held-out 2AFC with 95% CIs beside the untuned encoder and a plain MLP."""
    import dataclasses

    from fashionlens.perceptual.run import before_after_rows, train_perceptual
    from fashionlens.perceptual.train import PerceptualConfig

    cfg = PerceptualConfig.from_yaml(str(config))
    if not cfg.triplets:
        raise InvalidInputError(f"{config}: 'triplets' (a triplet CSV) is required")
    if eval_split:
        if eval_split not in ("reference", "column"):
            raise InvalidInputError(f"--eval-split must be 'reference' or 'column', got '{eval_split}'")
        cfg = dataclasses.replace(cfg, split=eval_split)
    metrics = train_perceptual(cfg, progress=not json_out)
    if json_out:
        print_json({k: v for k, v in metrics.items() if k != "history"})
        return
    sizes = f"{metrics['n_train']} training, {metrics['n_val']} validation triplets"
    if "after" not in metrics:
        typer.echo(f"run saved to {cfg.out}: {sizes}; validation 2AFC {metrics['best_val_2afc']:.3f} "
                   f"(early stopping only). Held-out scores: --eval-split reference")
        return
    print_table(before_after_rows(metrics), ["condition", "untuned", "plain MLP", "tuned", "human_ceiling", "n"],
                title=f"2AFC on {metrics['n_test']} held-out {metrics['source']} triplets (split {metrics['split']}, "
                      f"{sizes}); run saved to {cfg.out}")
    if "lighting" in metrics["after"]:
        typer.echo(f"relit = {metrics['after']['lighting']['relighting']} (not real renders under other lights)")


@app.command("annotate")
@friendly_errors
def annotate_cmd(
    catalog: Path = typer.Argument(..., help="catalog folder or table whose photos are shown"),
    out: Path = typer.Option(..., "--out", help="CSV the answers go to (anchor,a,b,choice); resumed if present"),
    port: int = typer.Option(8765, "--port"),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address (default: this machine only)"),
    n: int = typer.Option(500, "--n", help="number of triplets in the session"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Serve a page that asks 'which looks more like the reference?' (keys 1 / 2, 0 or space: can't tell)."""
    import uvicorn

    from fashionlens.app.annotate import create_app
    from fashionlens.catalog import load_catalog

    api = create_app(load_catalog(catalog, check_images=False), out, n=n, seed=seed)
    typer.echo(f"annotating into {out}: open http://{host}:{port}/")
    uvicorn.run(api, host=host, port=port, log_level="warning")
