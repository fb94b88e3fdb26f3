"""Vector indexes over catalog embeddings."""

from fashionlens.index.exact import ExactIndex

__all__ = ["ExactIndex"]
