"""Progress on stderr: a rich bar on a terminal, plain lines elsewhere (logs, CI, pipes).

FASHIONLENS_PROGRESS=0 silences both; =1 forces the bar even off a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

LINE_SECONDS = 30.0  # off a terminal: a line at every tenth of the work, or at least this often


def enabled() -> bool:
    """Whether any progress is shown."""
    return os.environ.get("FASHIONLENS_PROGRESS", "auto") != "0"


@contextmanager
def counter(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """`advance(n)`: record n more units done of `total` (for work that is not one loop of items)."""
    if not enabled():
        yield lambda n=1: None
        return
    if not (sys.stderr.isatty() or os.environ.get("FASHIONLENS_PROGRESS") == "1"):
        yield _Lines(description, total).advance
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def track(it: Iterable[T], description: str = "", total: int | None = None) -> Iterator[T]:
    """Iterate, showing progress on stderr: a rich bar when interactive, plain lines otherwise."""
    if total is None and hasattr(it, "__len__"):
        total = len(it)  # type: ignore[arg-type]
    with counter(description, total) as advance:
        for x in it:
            yield x
            advance(1)


class _Lines:
    """Plain `description: done/total (pct%), s` lines: a log gets ~10 of them, not a bar's redraws."""

    def __init__(self, description: str, total: int | None):
        self.name, self.total, self.done = description or "working", total, 0
        self.t0 = self.last = time.monotonic()
        self.step = max(1, -(-total // 10)) if total else 0
        self.next_at = self.step

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if (self.step and self.done >= self.next_at) or now - self.last >= LINE_SECONDS:
            of = f"/{self.total} ({100 * self.done // self.total}%)" if self.total else ""
            print(f"{self.name}: {self.done}{of}, {now - self.t0:.0f} s", file=sys.stderr, flush=True)
            self.last = now
            while self.step and self.next_at <= self.done:
                self.next_at += self.step


def status(message: str) -> None:
    """One line on stderr about a step of long work (what starts, what it scored), unless silenced."""
    if enabled():
        print(message, file=sys.stderr, flush=True)
