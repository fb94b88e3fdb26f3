"""Plain transformers text encoders (BERT), mean-pooled over real tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import ModelCard
from fashionlens.encoders.loading import (
    TorchEncoder,
    hub_load,
    loaded_card,
    masked_mean,
    source_of,
    with_source,
)
from fashionlens.encoders.registry import register

BERT_CARD = ModelCard(
    name="bert-base-uncased", modalities=("text",), dim=768, source="google-bert/bert-base-uncased",
    licence="Apache-2.0", pooling="mean over non-padding tokens of the last layer",
    notes="BERT base, not trained for similarity: a baseline for texts and for fine-tuning; "
          "minilm-l6 is better off the shelf",
    extra={"library": "transformers", "hub_files": {"google-bert/bert-base-uncased": None}},
)


class HFTextEncoder(TorchEncoder):
    """Mean of the last hidden states under the attention mask (padding-invariant)."""

    modalities = ("text",)

    def __init__(self, name: str, model: Any, tokenizer: Any, device: str = "auto",
                 precision: str = "auto", batch_size: int = 64, max_length: int = 128):
        self._setup(name, model, None, device, precision, batch_size)
        self.tokenizer = tokenizer
        self.dim = int(model.config.hidden_size)
        self.max_length = min(max_length, int(model.config.max_position_embeddings))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        batch = self._tokens(self.tokenizer, texts, self.max_length)
        with self._inference():
            hidden = self.model(**batch).last_hidden_state
            return self._numpy(masked_mean(hidden, batch["attention_mask"]))

    def card(self) -> ModelCard:
        return loaded_card(BERT_CARD if self.name == BERT_CARD.name else None, self)


def load_hf_text(name: str, source: str, device: str = "auto", precision: str = "auto",
                 batch_size: int = 64, max_length: int = 128) -> HFTextEncoder:
    """`AutoModel` + `AutoTokenizer` from a hub id or local dir (its pooler, if any, goes unused:
    dropping it at load would only make transformers report the checkpoint's pooler weights)."""
    from transformers import AutoModel, AutoTokenizer

    model, tok = hub_load(name, source, lambda: (AutoModel.from_pretrained(source),
                                                  AutoTokenizer.from_pretrained(source)))
    enc = HFTextEncoder(name, model, tok, device, precision, batch_size, max_length)
    return with_source(enc, source)


@register("bert-base-uncased", BERT_CARD)
def bert_base_uncased(weights: str | Path | None = None, **kw: Any) -> HFTextEncoder:
    # 128 tokens: product titles and descriptions are short; attention cost grows quadratically
    return load_hf_text("bert-base-uncased", source_of(weights, BERT_CARD.source), **kw)
