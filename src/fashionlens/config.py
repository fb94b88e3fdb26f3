"""The one `Config` base: typed dataclass settings with defaults, strict on unknown keys.

Configs live in code; YAML appears only as a saved run (`to_yaml`) that `from_yaml` reads back.
A config field that is itself a Config (e.g. `BuildConfig.align`) is rebuilt from its dict.
"""

from __future__ import annotations

import dataclasses
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
        """Build from a mapping; an unknown key is an error naming it, the source and the known keys."""
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
