"""`fashionlens` command line: thin typer commands over the Python API.

Only typer and the standard library are imported at module level, so `fashionlens --help` stays fast;
each command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="fashionlens",
    help="Search, recommend, categorize and forecast a fashion catalog from its photos and texts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, sub-command name): each module defines `app` (a typer.Typer) and imports only light things.
SUBAPPS = (
    ("fashionlens.cli.evaluate", "evaluate"),
    ("fashionlens.cli.train", "train"),
    ("fashionlens.cli.categorize", "categorize"),
    ("fashionlens.cli.perceptual", "perceptual"),
    ("fashionlens.cli.sales", "sales"),
)
# modules whose commands attach directly to the top-level app via `register(app)`
COMMAND_MODULES = (
    "fashionlens.cli.search",
    "fashionlens.cli.encoders",
    "fashionlens.cli.explore",
    "fashionlens.cli.serve",
)

def _optional(mod: str):
    """Import a CLI module, or None when that part of the package is not installed."""
    try:
        return importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name != mod:
            raise
        return None


for _mod, _name in SUBAPPS:
    if (_m := _optional(_mod)) is not None:
        app.add_typer(_m.app, name=_name)
for _mod in COMMAND_MODULES:
    if (_m := _optional(_mod)) is not None:
        _m.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
