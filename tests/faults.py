"""Crash injection for the atomicity tests: a kill -9 stand-in at the k-th commit step of a write."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class Killed(BaseException):
    """Not an Exception: `except Exception` clean-ups do not run, as after a real kill."""


class CrashPoints:
    """Counts the steps that make writes visible (os.replace, os.rename, shutil.rmtree). With `at=k`
    the k-th step and every later one raise Killed: nothing runs after a kill."""

    def __init__(self, at: int | None = None):
        self.at, self.steps, self.dead = at, 0, False
        self.where = ""  # the step that was killed

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if not self.dead and self.steps == self.at:
                self.dead, self.where = True, f"{fn.__name__} {args[0] if args else ''}"
            if self.dead:
                raise Killed(f"killed at step {self.at}: {self.where}")
            self.steps += 1
            return fn(*args, **kwargs)

        return step


@contextlib.contextmanager
def crash_at(at: int | None) -> Iterator[CrashPoints]:
    """Patch the commit steps for the block; `at=None` only counts them."""
    cp = CrashPoints(at)
    with pytest.MonkeyPatch.context() as m:
        for mod, name in ((os, "replace"), (os, "rename"), (shutil, "rmtree")):
            m.setattr(mod, name, cp.wrap(getattr(mod, name)))
        yield cp
