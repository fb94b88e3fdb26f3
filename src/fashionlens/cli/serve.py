"""`fashionlens serve`: the web app and HTTP API over index (and categorizer) directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the models and indexes "
                                "(memory x N). One process runs Python on one core at a time: on a machine with N "
                                "cores, N workers serve about N times the requests."),
    optimize: bool = typer.Option(True, help="Run text towers in ONNX Runtime when it is installed (same vectors, "
                                  "~3x less CPU per query); --no-optimize keeps torch."),
) -> None:
    """Serve search, similar items and photo categorization in the browser and as a JSON API (/docs)."""
    import json
    import os

    # Before torch / faiss load: their OpenMP pools otherwise start a thread per core that spins
    # between calls (measured: 42 ms server CPU per search request instead of 23 ms).
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import uvicorn

    from fashionlens.app.server import SERVE_ENV, create_app, set_threads

    for d in [*index, *(categorizer or [])]:
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such directory")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: serving on {host}: other machines can reach this server", err=True)
    if workers > 1:  # each worker process builds the app itself from these settings
        from fashionlens.categorize.categorizer import Categorizer
        from fashionlens.search.index import SearchIndex

        for d in index:  # fail here, once: a worker that cannot start would be restarted forever
            SearchIndex.check(d)
        for d in categorizer or []:
            Categorizer.check(d)
        os.environ[SERVE_ENV] = json.dumps({"index": [str(d) for d in index], "threads": threads,
                                            "categorizer": [str(d) for d in categorizer or []],
                                            "captioner": captioner, "max_bytes": max_mb * 1024 * 1024,
                                            "optimize": optimize})
        typer.echo(f"{workers} workers loading indexes and models; serving on http://{host}:{port}/ "
                   "(API docs at /docs) once they are up; Ctrl+C stops", err=True)
        run_workers(host, port, workers)
        return
    set_threads(threads)
    typer.echo("loading indexes and models ...", err=True)
    app = create_app(index, categorizer or [], captioner=captioner, max_bytes=max_mb * 1024 * 1024,
                     optimize=optimize)
    typer.echo(f"serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def run_workers(host: str, port: int, workers: int) -> None:
    """uvicorn's process supervisor over `tcp_listener` (each worker builds the app from the environment)."""
    from uvicorn import Config
    from uvicorn.supervisors import Multiprocess

    config = Config("fashionlens.app.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
    Multiprocess(config, sockets=[tcp_listener(config)]).run()


def tcp_listener(config: Any) -> Any:
    """The listening socket of a uvicorn Config, marked as TCP.

    uvicorn's own socket for `workers > 1` has protocol number 0, so asyncio does not set TCP_NODELAY
    on its connections and every response waits ~40 ms for a delayed ACK (measured: 44 ms per /healthz
    vs 1.3 ms with this socket). The same file descriptor, re-wrapped as IPPROTO_TCP, fixes it.
    """
    import socket

    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
