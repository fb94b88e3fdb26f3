"""Catalog in: readers, validation, safe image opening."""

from fashionlens.catalog.core import Catalog, ImportIssue, ImportReport, Item
from fashionlens.catalog.images import ImageError, open_image
from fashionlens.catalog.readers import CatalogError, StrictImportError, load_catalog, validate

__all__ = [
    "Catalog",
    "CatalogError",
    "ImageError",
    "ImportIssue",
    "ImportReport",
    "Item",
    "StrictImportError",
    "load_catalog",
    "open_image",
    "validate",
]
