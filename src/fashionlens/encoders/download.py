"""`fashionlens download NAME`: fetch a backbone into the normal Hugging Face cache, once, online.

Every hub-backed family (open_clip, transformers, timm) reads that cache, so after a download the
model loads with HF_HUB_OFFLINE=1 through the same `create(NAME)`.
"""

from __future__ import annotations

import os
from pathlib import Path

from fashionlens.encoders.base import ModelCard
from fashionlens.encoders.hub import ModelNotAvailableError
from fashionlens.encoders.loading import NON_TORCH_FILES
from fashionlens.encoders.registry import UnknownEncoderError, create, list_encoders


def card_of(name: str) -> ModelCard:
    """The registered model card of `name`."""
    cards = {c.name: c for c in list_encoders()}
    if name not in cards:
        raise UnknownEncoderError(f"unknown encoder '{name}'. Known encoders: {', '.join(cards)}")
    return cards[name]


def download(name: str) -> list[Path]:
    """Download the hub repositories behind registry `name`; returns their local snapshot dirs.

    Names without hub files (offline packages, or families that fetch through their own library)
    are loaded once instead, which fetches whatever they need.
    """
    card = card_of(name)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelNotAvailableError(f"cannot download '{name}' while HF_HUB_OFFLINE=1 is set: "
                           f"run `env -u HF_HUB_OFFLINE fashionlens download {name}` on a machine with internet")
    hub_files: dict[str, list[str] | None] = card.extra.get("hub_files") or {}
    if not hub_files:
        create(name)  # offline packages load as they are; timm/ST fetch into the same cache
        return []
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    paths = []
    for repo, allow in hub_files.items():
        try:
            paths.append(Path(snapshot_download(repo, allow_patterns=allow, ignore_patterns=NON_TORCH_FILES)))
        except GatedRepoError:
            raise ModelNotAvailableError(f"'{name}' ({repo}) is gated: accept its licence at https://huggingface.co/{repo}, "
                               "then log in (`hf auth login` or HF_TOKEN) and retry") from None
        except RepositoryNotFoundError:
            raise ModelNotAvailableError(f"'{name}': hub repository {repo} not found (private or renamed?)") from None
        except OSError as e:  # network errors subclass OSError; keep the library's reason, one line
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelNotAvailableError(f"could not download '{name}' ({repo}): {reason}") from None
    return paths
