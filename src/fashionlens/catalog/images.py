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


def open_image(src: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image as RGB, or raise ImageError with the reason."""
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
