"""ONNX Runtime inference for the torch towers: exported once, cached on disk by fingerprint.

One helper for every tower (`cached_model` + `session`): the export is keyed by the encoder's
fingerprint, a digest of its weights and the torch / onnxruntime versions, written atomically under
`<embedding cache>/onnx/` and reused by every later process. The image tower can also be quantized
to int8 (static, calibrated on catalog photos), which gets its own cache entry and fingerprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.encoders.base import Preprocess
from fashionlens.utils import atomic_write, default_cache

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when an export changes what a cached file holds: old entries are then unused
OPSET = 17
CALIBRATION_PHOTOS = 200  # the photos int8 calibration uses (the first ones the encoder embeds)
MIN_CALIBRATION = 32  # fewer photos than this give activation ranges too narrow to trust


def cache_root() -> Path:
    """Where exported models live: beside the embedding cache (`FASHIONLENS_CACHE` moves both)."""
    return default_cache() / "onnx"


def state_digest(module: Any) -> str:
    """Digest of a torch module's weights and buffers (names, shapes, values): what an export holds."""
    import torch

    h = hashlib.blake2b(digest_size=10)
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def weights_version(module: Any) -> tuple[int, int]:
    """Changes whenever the module or its weights change in place (training, `load_state_dict`):
    (object id, sum of torch's per-tensor version counters). Cheap enough to check every batch."""
    import itertools

    return id(module), sum(t._version for t in itertools.chain(module.parameters(), module.buffers()))


def _torch_version() -> str:
    """The installed torch's version, read from its metadata: no import (the exporter's version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def default_threads() -> int:
    """As many threads as torch would use (`torch.set_num_threads` once torch is loaded, else
    OMP_NUM_THREADS, else one per core), found without importing torch."""
    import os
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else os.cpu_count() or 1


def cached_model(tag: str, key: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """The cached file for (`tag`, `key`), made by `build(path)` the first time (atomically)."""
    import onnxruntime as ort

    full = {**key, "torch": _torch_version(), "onnxruntime": ort.__version__, "format": EXPORT_FORMAT}
    digest = hashlib.blake2b(json.dumps(full, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()
    path = cache_root() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', tag)[:60]}-{digest}.onnx"
    if not path.is_file():
        log.info("exporting %s to ONNX (once; cached in %s)", tag, path)
        with atomic_write(path) as tmp:
            build(tmp)
    return path


def session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on `path`; a cached file that does not load is removed, so the
    caller's next `cached_model` exports it again."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads or default_threads(), 1  # one op at a time
    # no busy-waiting between ops: the decode threads need those cycles on a 2-core machine
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception:
        path.unlink(missing_ok=True)
        raise


def cached_session(tag: str, key: dict[str, Any], build: Callable[[Path], None], threads: int | None = None) -> Any:
    """`session(cached_model(...))`, exporting once more if the cached file turns out broken."""
    try:
        return session(cached_model(tag, key, build), threads)
    except ImportError:
        raise
    except Exception as e:  # a truncated or foreign file in the cache: rebuild it once
        log.warning("cached ONNX model for %s did not load (%s); exporting it again", tag, e)
        return session(cached_model(tag, key, build), threads)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The torch exporter and the quantizer print notes and dump tensor protos on stdout/stderr."""
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def export(module: Any, sample: tuple[Any, ...], path: Path, input_names: Sequence[str],
           output_names: Sequence[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    """`module` (eval mode) as one ONNX graph at `path`: the TorchScript exporter, fixed opset."""
    import torch

    with _quiet(), torch.inference_mode():
        torch.onnx.export(module.eval(), sample, str(path), input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=OPSET,
                          dynamo=False)


# ---- the image tower ----------------------------------------------------------------------------
def static_padding(model: Any, hw: int | tuple[int, int]) -> Any:
    """A copy of `model` whose TF-style "same" convolutions (timm `Conv2dSame`, as in the Lite
    family) pad by constants computed for `hw` px inputs (square, or (height, width)). The dynamic version puts shape
    arithmetic in the graph, which blocks constant folding and int8 quantization; zeros are padded
    either way, so the features are the same."""
    import copy

    import torch
    import torch.nn.functional as F
    from timm.layers import Conv2dSame
    from timm.layers.padding import pad_same_arg

    model = copy.deepcopy(model).eval()
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: sizes.__setitem__(n, tuple(a[0].shape[-2:])))
             for n, m in model.named_modules() if isinstance(m, Conv2dSame)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, *((hw, hw) if isinstance(hw, int) else hw)))
    for h in hooks:
        h.remove()

    class StaticPad(torch.nn.Conv2d):  # the same parameters, a constant pad
        def __init__(self, conv: Any, pad: list[int]):
            super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                             conv.dilation, conv.groups, conv.bias is not None)
            self.weight, self.bias, self.pad = conv.weight, conv.bias, tuple(pad)

        def forward(self, x: Any) -> Any:
            return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    for name, hw in sizes.items():
        conv = model.get_submodule(name)
        parent, _, attr = name.rpartition(".")
        pad = pad_same_arg(list(hw), list(conv.weight.shape[-2:]), conv.stride, conv.dilation)
        setattr(model.get_submodule(parent) if parent else model, attr, StaticPad(conv, pad))
    return model


def _pixel_graph(model: Any, pp: Preprocess) -> Any:
    """`model` behind the normalisation, so the graph eats the (n, size, size, 3) uint8 batch that
    decoding produced: no float conversion or copy in Python per batch."""
    import torch

    inner = static_padding(model, pp.hw)

    class Pixels(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(pp.mean).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(pp.std).view(1, 3, 1, 1))

        def forward(self, pixels: Any) -> Any:  # the same float ops as torch_utils.pixel_batch
            x = pixels.permute(0, 3, 1, 2).float().div(255.0)
            return self.inner((x - self.mean) / self.std)

    return Pixels().eval()


def image_session(name: str, weights: str, model: Callable[[], Any], pp: Preprocess, int8: bool = False,
                  calibration: Callable[[], np.ndarray] | None = None, threads: int | None = None) -> Any:
    """A session computing the features of the network `model()` returns (called only to export)
    from uint8 pixel batches (see `pixel_array`); `weights` names its weights in the cache key
    (`state_digest`, or a digest of the weights file).

    `int8`: static int8 quantization (QDQ, per-channel weights), calibrated on the uint8 batch
    `calibration()` returns, called only when no int8 export is cached yet."""
    key = {"kind": "image", "name": name, "weights": weights, "preprocess": pp.to_dict()}

    def build_fp32(path: Path) -> None:
        sample = np.full((2, *pp.hw, 3), pp.fill, dtype=np.uint8)
        import torch

        export(_pixel_graph(model(), pp), (torch.from_numpy(sample),), path, ["pixels"], ["features"],
               {"pixels": {0: "batch"}, "features": {0: "batch"}})

    if not int8:
        return cached_session(name, key, build_fp32, threads)

    def build_int8(path: Path) -> None:
        if calibration is None:
            raise ValueError(f"{name}: int8 needs calibration photos")
        quantize(cached_model(name, key, build_fp32), path, calibration())

    return cached_session(f"{name}.int8", {**key, "int8": "qdq-per-channel-u8s8"}, build_int8, threads)


def quantize(src: Path, dst: Path, pixels: np.ndarray, batch: int = 16) -> None:
    """Static int8 quantization of the fp32 graph `src` into `dst`, activation ranges calibrated on
    `pixels` ((n, size, size, 3) uint8 catalog photos)."""
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([pixels[i : i + batch] for i in range(0, len(pixels), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            b = next(self.batches, None)
            return None if b is None else {"pixels": b}

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))  # shape inference + folding, as the quantizer advises
        # reduce_range: 7-bit weights, so AVX2 machines without VNNI do not saturate int16 sums
        quantize_static(str(pre), str(dst), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
