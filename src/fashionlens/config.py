"""The one `Config` base: typed dataclass settings with defaults, strict on unknown keys.

Configs live in code; YAML appears only as a saved run (`to_yaml`) that `from_yaml` reads back.
A config field that is itself a Config (e.g. `BuildConfig.align`) is rebuilt from its dict.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from fashionlens.errors import InvalidInputError

C = TypeVar("C", bound="Config")


@dataclasses.dataclass
class Config:
    """Subclass with `@dataclass`; every field needs a default."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, source: str = "config") -> C:
        """Build from a mapping; an unknown key, or a value of the wrong type, is an error naming it,
        the source and the known keys (or the type it should be)."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"{source}: unknown {cls.__name__} key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            sub = hints.get(name)
            if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, Config):
                data[name] = sub.from_dict(value, f"{source}: {name}")
            elif sub is not None:
                data[name] = _typed(value, sub, f"{source}: {cls.__name__} key '{name}'")
        return cls(**data)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} not found")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise InvalidInputError(f"{p}: expected a mapping of config keys")
        return cls.from_dict(data, str(p))

    def to_yaml(self, path: str | Path) -> Path:
        """Save as a run's record (written atomically)."""
        import yaml

        from fashionlens.utils import atomic_write

        with atomic_write(path) as tmp:
            Path(tmp).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)


_SCALARS = (bool, int, float, str)


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against a field's type hint: scalars, X | None, list / tuple / dict (a JSON or
    YAML list becomes the tuple a field asks for; an int is a float). Other hints pass unchecked."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _typed(value, option, where)
            except InvalidInputError:
                continue
        raise InvalidInputError(f"{where} is {value!r}, not {_name(hint)}")
    kind = origin or hint
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in _SCALARS:
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        raise InvalidInputError(f"{where} is {value!r}, not {_name(hint)}")
    if kind in (list, tuple) and isinstance(value, (list, tuple)):
        item = args[0] if args and (kind is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        items = [value[i] if item is None else _typed(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return kind(items)
    if kind in (list, tuple, dict) and not isinstance(value, kind):
        raise InvalidInputError(f"{where} is {value!r}, not {_name(hint)}")
    return value


def _name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
