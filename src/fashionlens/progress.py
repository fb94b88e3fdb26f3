"""Progress bars (rich) that stay quiet when output is not a terminal or when disabled."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("FASHIONLENS_PROGRESS", "auto") != "0" and (
        sys.stderr.isatty() or os.environ.get("FASHIONLENS_PROGRESS") == "1"
    )


def track(it: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr when interactive."""
    if not enabled():
        yield from it
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(it, description=description, total=total, console=Console(stderr=True), transient=True)
