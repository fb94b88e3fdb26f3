"""Embeddings of a catalog: batched, cached per (encoder, item, content), resumable."""

from fashionlens.embed.runner import DEFAULT_CACHE, embed_images, embed_texts
from fashionlens.embed.store import EmbeddingStore

__all__ = ["DEFAULT_CACHE", "EmbeddingStore", "embed_images", "embed_texts"]
