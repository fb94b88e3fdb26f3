"""The package's layers, lowest first; an import that runs upward (even one inside a function) fails.

catalog < encoders < embed, index < evaluation < train < jobs (search, categorize, perceptual, sales,
explore) < app < cli. Modules outside a layer (utils, progress, errors) sit below all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "fashionlens"
RANK = {"catalog": 1, "encoders": 2, "embed": 3, "index": 3, "evaluation": 4, "train": 5,
        "search": 6, "categorize": 6, "perceptual": 6, "sales": 6, "explore": 6, "app": 7, "cli": 8}


def _layer(parts: tuple[str, ...]) -> str | None:
    return parts[0] if parts and parts[0] in RANK else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, fashionlens sub-package) of every absolute fashionlens import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "fashionlens" and len(parts) > 1:
                out.append((node.lineno, parts[1]))
    return out


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        here = _layer(rel.parts[:-1])
        if here is None:
            continue
        for line, target in _imports(f):
            if target in RANK and target != here and RANK[target] >= RANK[here] and not (
                    RANK[target] == RANK[here] == 6):  # jobs may use each other's public parts
                bad.append(f"{rel}:{line} imports fashionlens.{target}")
    return bad


def test_no_upward_imports() -> None:
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "x.py").write_text("def f():\n    from fashionlens.train.align import train_alignment\n")
    (tmp_path / "embed").mkdir()
    (tmp_path / "embed" / "y.py").write_text("import fashionlens.index.exact\n")
    assert upward_imports(tmp_path) == ["embed/y.py:1 imports fashionlens.index", "encoders/x.py:2 imports fashionlens.train"]


@pytest.mark.parametrize("module", ["fashionlens", "fashionlens.search.index", "fashionlens.cli.main"])
def test_light_modules_import_no_torch(module: str) -> None:
    import subprocess
    import sys

    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
