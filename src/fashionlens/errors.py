"""Errors a user causes (a bad path, name, column, value or setting), as opposed to bugs.

The CLI prints these as one line and exits with code 2; anything else is a bug and keeps its
traceback. Each type also subclasses the builtin it replaced, so `except ValueError` (or KeyError)
written before this module existed still catches it.
"""

from __future__ import annotations


class FashionlensError(Exception):
    """Base of every error caused by the input or settings; the message says what to change."""


class InvalidInputError(FashionlensError, ValueError):
    """A value, file content or option that cannot be used (bad option, malformed table, bad image)."""


class NotFoundError(FashionlensError, KeyError):
    """A name that does not exist: an unknown column, item id, encoder or class."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class TrainingDivergedError(FashionlensError, FloatingPointError):
    """Training produced a non-finite loss; the message names the setting to lower."""
