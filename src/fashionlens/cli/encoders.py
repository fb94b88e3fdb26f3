"""`fashionlens encoders` (the backbone zoo and its model cards) and `fashionlens download NAME`."""

from __future__ import annotations

import typer

from fashionlens.cli.common import friendly_errors, print_json, print_table
from fashionlens.errors import InvalidInputError


def register(app: typer.Typer) -> None:
    app.command("encoders")(encoders_cmd)
    app.command("download")(download_cmd)


@friendly_errors
def encoders_cmd(
    modality: str | None = typer.Option(None, help="Only encoders with this tower: image or text."),
    as_json: bool = typer.Option(False, "--json", help="Full model cards as JSON."),
) -> None:
    """List every encoder name with its model card (dim, modalities, licence, source)."""
    from fashionlens.encoders import list_encoders

    if modality not in (None, "image", "text"):
        raise InvalidInputError(f"--modality must be 'image' or 'text', not '{modality}'")
    cards = [c for c in list_encoders() if modality is None or modality in c.modalities]
    if as_json:
        print_json([c.to_dict() for c in cards])
        return
    rows = [{"name": c.name, "towers": "+".join(c.modalities), "dim": c.dim or "",
             "px": c.preprocess.size if c.preprocess else "", "licence": c.licence, "source": c.source}
            for c in cards]
    print_table(rows, title="Encoders (use any name with --encoder; `fashionlens download NAME` fetches one)")


@friendly_errors
def download_cmd(
    name: str = typer.Argument(..., help="Registry name, e.g. dinov2-vits14."),
    as_json: bool = typer.Option(False, "--json", help="Print the downloaded snapshot folders as JSON."),
) -> None:
    """Fetch a backbone into the normal Hugging Face cache so it loads offline afterwards."""
    from fashionlens.encoders.download import download

    if not as_json:  # the hub's own bars are off (see cli.common): say what takes the time
        typer.echo(f"fetching {name} into the Hugging Face cache (large models take minutes) ...", err=True)
    paths = download(name)
    if as_json:
        print_json({"name": name, "paths": [str(p) for p in paths], "ready": True})
        return
    for p in paths:
        typer.echo(f"{name}: {p}")
    typer.echo(f"ready: {name} now loads offline (HF_HUB_OFFLINE=1)")
