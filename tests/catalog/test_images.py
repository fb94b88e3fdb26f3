"""open_image(max_side=...): shrunk while decoding, with the same checks and colours as full size."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.catalog import ImageError, open_image

SRC = Path(__file__).resolve().parents[2] / "src"


def encoded(mode: str, fmt: str, size=(1500, 600), colour=(200, 40, 60, 0)) -> bytes:
    """A solid-colour image in `mode`, saved as `fmt` (RGBA: fully transparent, colour kept)."""
    im = Image.new("RGBA", size, colour)
    im = im if mode == "RGBA" else im.convert("RGB")
    if mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode not in ("RGB", "RGBA"):
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def mean_colour(im: Image.Image) -> np.ndarray:
    return np.asarray(im, np.float64).reshape(-1, 3).mean(0)


FORMATS = [("RGB", "JPEG"), ("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "PNG"), ("L", "PNG"), ("P", "PNG"),
           ("RGBA", "PNG"), ("P", "GIF"), ("RGB", "WEBP"), ("RGB", "BMP")]


@pytest.mark.parametrize(("mode", "fmt"), FORMATS, ids=[f"{m}-{f}" for m, f in FORMATS])
def test_max_side_shrinks_to_rgb_keeping_aspect_and_colour(mode, fmt):
    data = encoded(mode, fmt)
    full, small = open_image(data), open_image(data, max_side=300)
    assert full.size == (1500, 600)
    assert small.mode == "RGB" and small.size == (300, 120)
    # same colours as the full-size decode: palette indexes are not averaged, alpha is dropped, not
    # premultiplied (a transparent pixel keeps its colour, as without max_side)
    assert np.abs(mean_colour(small) - mean_colour(full)).max() <= 2, (mean_colour(small), mean_colour(full))


def test_max_side_keeps_detail_like_a_resize_of_the_full_image():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)).resize((1800, 1200), Image.NEAREST)
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    small = np.asarray(open_image(buf.getvalue(), max_side=240), np.float64)
    want = np.asarray(photo.resize((240, 160), Image.Resampling.BICUBIC), np.float64)
    assert small.shape == want.shape and np.abs(small - want).mean() < 3


def test_max_side_leaves_smaller_images_as_they_are():
    data = encoded("RGB", "PNG", size=(200, 100))
    assert np.array_equal(np.asarray(open_image(data, max_side=300)), np.asarray(open_image(data)))


def _noise(fmt: str, size=(1500, 600)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_max_side_still_decodes_the_whole_file(fmt):
    data = _noise(fmt)
    cut = data[: len(data) // 2]
    with pytest.raises(ImageError, match="truncated"):
        open_image(cut, max_side=300)
    assert open_image(data, max_side=300).size == (300, 120)


def test_max_side_keeps_the_pixel_cap():
    with pytest.raises(ImageError, match="1500x600 pixels exceeds the limit"):
        open_image(encoded("RGB", "PNG"), max_pixels=100_000, max_side=300)


PEAK = """
import gc, json, sys
from fashionlens.catalog import open_image
data = open(sys.argv[1], "rb").read()
side = int(sys.argv[2]) or None
def mb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field + ":")) / 1024
gc.collect()
rss = mb("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the next VmHWM is this decode's peak
im = open_image(data, max_side=side)
print(json.dumps({"size": im.size, "growth_mb": mb("VmHWM") - rss}))
"""


def _peak(tmp_path: Path, data: bytes, max_side: int) -> dict:
    """Peak RSS growth of one decode, in a fresh process (no freed memory left by other tests)."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", PEAK, str(path), str(max_side)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


# A 5000 x 5000 photo at full size is 100 MB as RGB (Pillow keeps 4 bytes a pixel), 25 MB as grey.
@pytest.mark.parametrize(("mode", "fmt", "bound_mb"), [("RGB", "JPEG", 60), ("L", "PNG", 60)])
def test_a_5000px_photo_is_never_held_at_full_size_in_rgb(tmp_path, mode, fmt, bound_mb):
    data = encoded(mode, fmt, size=(5000, 5000))
    shrunk = _peak(tmp_path, data, 1024)
    assert shrunk["size"] == [1024, 1024]
    # JPEG: libjpeg decodes at 1/2 scale (2500 px, 25 MB); grey PNG: the 25 MB decode, never RGB
    assert shrunk["growth_mb"] < bound_mb, shrunk
    full = _peak(tmp_path, data, 0)  # the same measurement sees the full-size decode and RGB copy
    assert full["size"] == [5000, 5000] and full["growth_mb"] > 100, full
