"""Uploaded photos: read into memory with a byte cap, checked by content, decoded with a pixel cap.

Nothing touches the disk: the bytes are read in chunks from the request and decoded from memory,
shrunk while decoding (a 35 KB PNG may declare 5000 x 5000 pixels, 100 MB once decoded in full).
"""

from __future__ import annotations

import io
import os

from PIL import Image

from fashionlens.catalog import ImageError, open_image
from fashionlens.errors import InvalidInputError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 25_000_000  # a 5000 x 5000 photo; larger ones are refused before decoding
# Longest side an upload is decoded to: >= 2x the input of every encoder in the zoo (160-384 px), so
# the encoder's own resize works as from the original; 4 MB of pixels instead of up to 100 MB.
UPLOAD_SIDE = 1024
# Decodes run at once per server process (see Served.decode_upload): each briefly holds the decoded
# pixels, up to ~8 bytes x MAX_PIXELS (200 MB) for a palette or alpha PNG at the cap.
MAX_DECODES = min(4, os.cpu_count() or 1)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# magic numbers of the allowed formats (the file name and the client's content-type are not trusted)
MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)


class UploadError(InvalidInputError):
    """An upload that is refused; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def sniff_format(data: bytes) -> str | None:
    """The image format named by the first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in MAGIC:
        if data.startswith(magic):
            return fmt
    return None


async def read_limited(upload, max_bytes: int = MAX_BYTES, chunk: int = 1 << 16) -> bytes:
    """All bytes of a starlette UploadFile, refusing (413) as soon as they pass `max_bytes`."""
    buf = bytearray()
    while True:
        part = await upload.read(chunk)
        if not part:
            return bytes(buf)
        buf += part
        if len(buf) > max_bytes:
            raise UploadError(f"{upload.filename or 'upload'}: file is larger than the limit of "
                              f"{max_bytes // (1024 * 1024)} MB", status=413)


def decode_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS,
                 max_side: int | None = UPLOAD_SIDE) -> Image.Image:
    """Check the content is an allowed image format, then decode it fully as RGB, shrunk while
    decoding to at most `max_side` px on its longer side (None: full size), or raise UploadError."""
    if not data:
        raise UploadError(f"{name}: empty file")
    fmt = sniff_format(data)
    if fmt is None:
        raise UploadError(f"{name}: not a supported image (content is not {', '.join(ALLOWED_FORMATS)}, "
                          "whatever the file name says)", status=415)
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only: cheap size check
            w, h = probe.size
            real = probe.format
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: too many pixels (decompression bomb guard)", status=413) from None
    except Exception:  # noqa: BLE001 -- any header parse failure is a corrupt upload, reported below
        w = h = 0
        real = fmt
    if real not in ALLOWED_FORMATS:
        raise UploadError(f"{name}: {real} images are not accepted; send {', '.join(ALLOWED_FORMATS)}", status=415)
    if w * h > max_pixels:
        raise UploadError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels} pixels", status=413)
    try:
        return open_image(data, max_pixels=max_pixels, max_side=max_side)
    except ImageError as e:
        raise UploadError(str(e).replace("upload:", f"{name}:", 1), status=400) from None
