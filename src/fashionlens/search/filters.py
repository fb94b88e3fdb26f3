"""Metadata filters as users type them (CLI, API, web page): `COL=VALUE` strings."""

from __future__ import annotations

from collections.abc import Sequence

from fashionlens.errors import InvalidInputError


def parse_filters(filters: Sequence[str] | None) -> dict[str, str]:
    """`COL=VALUE` (or `COL:VALUE`) strings -> {col: value}."""
    out: dict[str, str] = {}
    for f in filters or []:
        sep = "=" if "=" in f else ":"
        col, _, val = f.partition(sep)
        if not col or not val:
            raise InvalidInputError(f"bad filter '{f}': expected COL=VALUE")
        out[col.strip()] = val.strip()
    return out
