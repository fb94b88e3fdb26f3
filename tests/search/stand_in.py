"""A stand-in two-tower encoder for search tests: photos and names meet on colour only.

A photo's vector is its mean colour; a text's is the colours it names. So the photo side knows
colour but not type, like a weak real encoder, and a test can tell what the word side adds.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fashionlens.encoders.base import Encoder

COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220), "green": (20, 200, 20), "black": (10, 10, 10)}


class ColourEncoder(Encoder):
    name = "stand-in-colour"
    dim = 4
    modalities = ("image", "text")

    def _encode_images(self, images):
        out = []
        for im in images:
            im = Image.open(im) if isinstance(im, str) else im
            rgb = np.asarray(im.convert("RGB"), np.float32).reshape(-1, 3).mean(0)
            ref = np.asarray(list(COLOURS.values()), np.float32)
            out.append(np.exp(-np.linalg.norm(ref - rgb, axis=1) / 40))
        return np.stack(out)

    def _encode_texts(self, texts):
        out = np.full((len(texts), self.dim), 0.05, np.float32)  # no colour named: a flat vector
        for r, t in enumerate(texts):
            for j, c in enumerate(COLOURS):
                out[r, j] += float(c in t.lower())
        return out


def colour_encoder() -> ColourEncoder:
    return ColourEncoder()


def registered() -> str:
    """The stand-in under a registry name (idempotent): a saved index may only name registered
    encoders, and the CLI tests load their index from its folder."""
    from fashionlens.encoders import list_encoders, registry

    list_encoders()
    if ColourEncoder.name not in registry._REGISTRY:
        registry.register(ColourEncoder.name)(colour_encoder)
    return ColourEncoder.name


KINDS = {"Tshirts": "T-Shirt", "Shoes": "Sneakers", "Dresses": "Dress"}


def colour_catalog(root, with_texts: bool = True):
    """24 solid-colour photos: 3 types x 4 colours x 2; every 5th name says "Floral"."""
    import pandas as pd

    from fashionlens.catalog.core import Catalog
    from tests.conftest import write_image

    rows = []
    for i in range(24):
        kind, colour = list(KINDS)[i % 3], list(COLOURS)[(i // 3) % 4]
        shade = tuple(min(255, c + 3 * i) for c in COLOURS[colour])  # no two photos score alike
        path = write_image(root / "images" / f"{i}.jpg", shade)
        name = f"Acme Women {colour.title()}{' Floral' if i % 5 == 0 else ''} {KINDS[kind]}" if with_texts else ""
        rows.append({"id": str(i), "image": str(path), "text": name, "articleType": kind, "baseColour": colour.title()})
    return Catalog(pd.DataFrame(rows), root)


def build(root, with_texts: bool = True):
    """A built index folder over `colour_catalog` (stand-in encoder, no embedding cache)."""
    from fashionlens.search.index import BuildConfig, build_index

    return build_index(colour_catalog(root, with_texts), root / "idx",
                       BuildConfig(encoder=registered(), cache_dir=None), progress=False)
