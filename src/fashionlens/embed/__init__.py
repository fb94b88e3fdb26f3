"""Embeddings of a catalog: batched, cached per (encoder, item, content), resumable."""

from fashionlens.embed.runner import (
    DEFAULT_CACHE,
    decoded,
    embed_catalog_images,
    embed_images,
    embed_texts,
)
from fashionlens.embed.store import EmbeddingStore

__all__ = ["DEFAULT_CACHE", "EmbeddingStore", "decoded", "embed_catalog_images", "embed_images", "embed_texts"]
