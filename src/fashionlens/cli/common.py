"""Shared CLI plumbing: one clear error line + exit code 2, human tables or --json."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import typer

from fashionlens.errors import FashionlensError

F = TypeVar("F", bound=Callable[..., Any])

# Hugging Face libraries draw a "Loading weights" bar on every model load (on every command, --json
# too); set before any of them is imported. Our own progress (fashionlens.progress) is unaffected.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Errors users cause (bad path, unknown name, bad column): one line, exit code 2, no traceback.
# Only our own types and paths the user named: a KeyError or ValueError from a bug keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (FashionlensError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError, PermissionError)


def friendly_errors(fn: F) -> F:
    """A command whose user errors end in one `error:` line (exit 2) and whose warnings are one line each."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except USER_ERRORS as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    # ours (a skipped item, a fallback) are sentences for the user; others keep where they came from
    where = "" if category is UserWarning else f" ({category.__name__}, {filename}:{lineno})"
    typer.echo(f"warning: {message}{where}", err=True)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        typer.echo("(no results)")
        return
    cols = list(columns or rows[0].keys())
    table = Table(title=title)
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_fmt(r.get(c, "")) for c in cols])
    Console().print(table)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)
