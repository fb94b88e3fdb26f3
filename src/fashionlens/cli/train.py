"""`fashionlens train retrieval CONFIG.yaml`: fine-tune an image+text encoder pair for search."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors, print_json

app = typer.Typer(help="Train models on a catalog.", no_args_is_help=True)


@app.command("retrieval")
@friendly_errors
def retrieval_cmd(
    config: Path = typer.Argument(..., help="YAML config (see configs/retrieval.yaml); keys of RetrievalConfig."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoint."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train; the run directory becomes an encoder: `fashionlens index CATALOG --encoder run:<out>`."""
    from fashionlens.train.retrieval import train_from_yaml

    res = train_from_yaml(config, out, resume=resume, progress=not as_json)
    summary = {"run": str(res.out), "encoder": f"run:{res.out}", "best_epoch": res.best_epoch,
               "best_val_recall@10": round(res.best_recall10, 4), "epochs_run": len(res.history),
               "seconds": round(res.seconds, 1)}
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        typer.echo(f"{k}: {v}")
