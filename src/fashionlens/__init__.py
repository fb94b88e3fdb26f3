"""fashionlens: search, recommend, categorize and forecast a fashion catalog.

The public surface is small and lazy: `import fashionlens` imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_catalog": "fashionlens.catalog",
    "Catalog": "fashionlens.catalog",
    "Encoder": "fashionlens.encoders",
    "create": "fashionlens.encoders",
    "list_encoders": "fashionlens.encoders",
    "register": "fashionlens.encoders",
    "embed_images": "fashionlens.embed",
    "embed_texts": "fashionlens.embed",
    "build_index": "fashionlens.search.index",
    "SearchIndex": "fashionlens.search.index",
    "evaluate_retrieval": "fashionlens.search.evaluate",
    "Categorizer": "fashionlens.categorize.categorizer",
    "CategorizeConfig": "fashionlens.categorize.categorizer",
    "train_perceptual": "fashionlens.perceptual.run",
    "load_triplets": "fashionlens.perceptual.data",
    "compare_sales": "fashionlens.sales.forecast",
    "SalesFitConfig": "fashionlens.sales.run",
    "fit_sales": "fashionlens.sales.run",
}
_ALIASES = {"compare_sales": "compare"}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), _ALIASES.get(name, name))
    raise AttributeError(f"module 'fashionlens' has no attribute {name!r}")
