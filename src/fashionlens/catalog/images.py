"""Safe image opening: content-checked, size-limited, fully decoded (catches truncation)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from fashionlens.errors import InvalidInputError

MAX_PIXELS = 40_000_000  # decompression-bomb guard (a 6k x 6k photo is fine)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(InvalidInputError):
    """An image that cannot be used; the message says why."""


def open_image(src: str | Path | bytes, max_pixels: int = MAX_PIXELS, max_side: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, or raise ImageError with the reason.

    `max_side`: shrink the result so its longer side is at most this (aspect kept) while decoding:
    JPEGs decode at 1/2..1/8 scale inside libjpeg (`draft`); other formats are reduced straight from
    the decoded pixels, so an RGB or grey photo is never copied at full size (palette and alpha images
    still are, once, to convert them as without `max_side`).
    """
    name = "upload" if isinstance(src, bytes) else str(src)
    try:
        if isinstance(src, bytes):
            if not src:
                raise ImageError(f"{name}: empty file")
            fh = io.BytesIO(src)
        else:
            p = Path(src)
            if not p.is_file():
                raise ImageError(f"{name}: file not found")
            if p.stat().st_size == 0:
                raise ImageError(f"{name}: zero-byte file")
            fh = p.open("rb")
        with Image.open(fh) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels}")
            if max_side and max(w, h) > max_side:
                return _shrunk(im, max_side)
            im.load()  # forces a full decode: truncated files fail here, not later
            return im.convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (content is not a known image format)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: corrupt or truncated image ({e})") from None


def _shrunk(im: Image.Image, max_side: int) -> Image.Image:
    """`im` (opened, not loaded) fully decoded and shrunk to fit `max_side`, as RGB."""
    w, h = im.size
    scale = 2 * max_side / max(w, h)  # decode at >= 2x the target, as thumbnail's reducing_gap does
    im.draft(None, (max(1, int(w * scale)), max(1, int(h * scale))))  # JPEG only; a no-op elsewhere
    im.load()  # the whole stream is still decoded: truncated files fail here, as without max_side
    # palette, alpha, 1-bit and 16-bit modes are converted first, exactly as the full-size path does
    # (resizing them would resample indexes or premultiply alpha); RGB and L shrink as they are
    full = im if im.mode in ("RGB", "L") else im.convert("RGB")
    if full is not im:
        im.close()  # frees the decoded source now, not when the caller's `with` ends
    w, h = full.size
    scale = max_side / max(w, h)
    # a new image (never `im` itself, which the caller's `with` closes): reduce() by an integer factor
    # to >= 2x the target, then bicubic, like Image.thumbnail
    out = full.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC,
                      reducing_gap=2.0)
    return out if out.mode == "RGB" else out.convert("RGB")
