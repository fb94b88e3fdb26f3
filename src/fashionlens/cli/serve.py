"""`fashionlens serve`: the web app and HTTP API over index (and categorizer) directories."""

from __future__ import annotations

from pathlib import Path

import typer

from fashionlens.cli.common import friendly_errors


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


@friendly_errors
def serve_cmd(
    index: list[Path] = typer.Argument(..., help="Index directories (from `fashionlens index`); the first is the default."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default serves this machine only."),
    port: int = typer.Option(8000, min=1, max=65535),
    categorizer: list[Path] | None = typer.Option(None, "--categorizer", help="Saved categorizer directory (repeatable)."),
    captioner: str | None = typer.Option(None, help="Captioning model: registry name or local transformers folder."),
    max_mb: int = typer.Option(10, "--max-mb", min=1, help="Upload size limit in MB."),
    threads: int = typer.Option(1, min=1, help="CPU threads per model call and search (torch, faiss). One query "
                                "at a time is small: 1 avoids threads fighting over cores under concurrent load."),
) -> None:
    """Serve search, similar items and photo categorization in the browser and as a JSON API (/docs)."""
    import uvicorn

    from fashionlens.app.server import create_app

    for d in [*index, *(categorizer or [])]:
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such directory")
    _set_threads(threads)
    typer.echo("loading indexes and models ...", err=True)
    app = create_app(index, categorizer or [], captioner=captioner, max_bytes=max_mb * 1024 * 1024)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: serving on {host}: other machines can reach this server", err=True)
    typer.echo(f"serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _set_threads(n: int) -> None:
    import faiss
    import torch

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
