"""Offline-friendly hub access: one clear line instead of a hub client's stack trace."""

from __future__ import annotations

import os

from fashionlens.errors import FashionlensError


class ModelNotAvailableError(FashionlensError, RuntimeError):
    """A model is neither in the local cache nor reachable; the message says how to get it."""


def offline_error(name: str, source: str) -> ModelNotAvailableError:
    hint = " (HF_HUB_OFFLINE=1 is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
    return ModelNotAvailableError(
        f"model '{name}' ({source}) is not in the local cache and cannot be downloaded here{hint}. "
        f"Fix: run `fashionlens download {name}` where there is internet and copy its Hugging Face "
        f"cache (~/.cache/huggingface, or $HF_HOME) to this machine, or load a local copy in Python "
        f"with create('{name}', weights=PATH)."
    )
