"""Progress on stderr: a rich bar on a terminal, plain lines elsewhere (logs, CI, pipes).

FASHIONLENS_PROGRESS=0 silences both; =1 forces the bar even off a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

LINE_SECONDS = 30.0  # off a terminal: a line at every tenth of the work, or at least this often


def enabled() -> bool:
    """Whether any progress is shown."""
    return os.environ.get("FASHIONLENS_PROGRESS", "auto") != "0"


def _bar() -> bool:
    return sys.stderr.isatty() or os.environ.get("FASHIONLENS_PROGRESS") == "1"


def track(it: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate, showing progress on stderr: a rich bar when interactive, plain lines otherwise."""
    if not enabled():
        yield from it
        return
    if total is None and hasattr(it, "__len__"):
        total = len(it)  # type: ignore[arg-type]
    if not _bar():
        yield from _lines(it, description, total)
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(it, description=description, total=total, console=Console(stderr=True), transient=True)


def _lines(it: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    """Plain `description: done/total (pct%)` lines: a log file gets ~10 of them, not a bar's redraws."""
    name = description or "working"
    t0 = last = time.monotonic()
    step = max(1, -(-total // 10)) if total else 0
    next_at = step
    for done, x in enumerate(it, 1):
        yield x
        now = time.monotonic()
        if (step and done >= next_at) or now - last >= LINE_SECONDS:
            of = f"/{total} ({100 * done // total}%)" if total else ""
            print(f"{name}: {done}{of}, {now - t0:.0f} s", file=sys.stderr, flush=True)
            last = now
            while step and next_at <= done:
                next_at += step
