"""Catalog in: readers, validation, safe image opening."""

from fashionlens.catalog.core import (
    Catalog,
    CatalogError,
    CatalogWarning,
    ImportIssue,
    ImportReport,
    Item,
    StrictImportError,
)
from fashionlens.catalog.images import ImageError, open_image
from fashionlens.catalog.readers import load_catalog, validate

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogWarning",
    "ImageError",
    "ImportIssue",
    "ImportReport",
    "Item",
    "StrictImportError",
    "load_catalog",
    "open_image",
    "validate",
]
