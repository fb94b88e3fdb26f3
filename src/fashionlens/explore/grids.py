"""Photo grids: N photos per cluster, class or search result, with titles and hit/miss frames."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from fashionlens.catalog.images import ImageError, open_image

HIT = (34, 160, 60)
MISS = (210, 40, 40)
_PAD = 6


def letterbox(img: Image.Image, size: int, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Fit the whole photo in a `size` x `size` square on white (catalog photos sit on white)."""
    img = img.convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(img.resize((nw, nh), Image.LANCZOS), ((size - nw) // 2, (size - nh) // 2))
    return canvas


def load_thumb(src: Any, size: int) -> Image.Image:
    """A letterboxed thumbnail of a path or PIL image; an unreadable file becomes a grey tile
    (with a warning naming it) so one bad photo does not lose a whole figure."""
    if isinstance(src, Image.Image):
        return letterbox(src, size)
    try:
        return letterbox(open_image(src), size)
    except ImageError as e:
        warnings.warn(f"grid: {e} — drawn as a grey tile", stacklevel=3)
        tile = Image.new("RGB", (size, size), (200, 200, 200))
        ImageDraw.Draw(tile).text((4, size // 2 - 6), "unreadable", fill=(90, 90, 90), font=get_font(11))
        return tile


def get_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` px (no system fonts needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    """Shorten `text` with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def image_grid(
    images: Sequence[Any],
    titles: Sequence[str] | None = None,
    ncols: int = 5,
    thumb: int = 128,
    highlight: Sequence[bool | None] | None = None,
    heading: str | None = None,
) -> Image.Image:
    """Lay photos (paths or PIL images) out in a grid; returns a PIL image.

    `titles` go under each photo (up to two lines, shortened to fit); `highlight[i]` True draws a
    green frame (hit), False a red one (miss), None none.
    """
    n = len(images)
    if n == 0:
        raise ValueError("image_grid: no images given")
    if ncols < 1 or thumb < 8:
        raise ValueError(f"image_grid: ncols must be >= 1 and thumb >= 8 (got {ncols}, {thumb})")
    for name, seq in (("titles", titles), ("highlight", highlight)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"image_grid: {len(seq)} {name} for {n} images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fsize = max(9, min(14, thumb // 10))
    font = get_font(fsize)
    title_h = (2 * (fsize + 3) + 2) if titles is not None else 0
    head_h = fsize + 12 if heading else 0
    cell_w, cell_h = thumb + 2 * _PAD, thumb + 2 * _PAD + title_h
    grid = Image.new("RGB", (ncols * cell_w, head_h + nrows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    if heading:
        draw.text((_PAD, 4), _fit_text(draw, heading, grid.width - 2 * _PAD, font), fill=(0, 0, 0), font=font)
    for i, src in enumerate(images):
        r, c = divmod(i, ncols)
        x, y = c * cell_w + _PAD, head_h + r * cell_h + _PAD
        grid.paste(load_thumb(src, thumb), (x, y))
        flag = highlight[i] if highlight is not None else None
        if flag is not None:
            colour = HIT if flag else MISS
            draw.rectangle([x - 4, y - 4, x + thumb + 3, y + thumb + 3], outline=colour, width=4)
        if titles is not None:
            _draw_title(draw, str(titles[i]), x, y + thumb + 3, thumb, fsize, font)
    return grid


def _draw_title(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, width: int, fsize: int, font: Any) -> None:
    # greedy wrap into two lines; the second is shortened with an ellipsis
    words, first = text.split(), ""
    while words and draw.textlength((first + " " + words[0]).strip(), font=font) <= width:
        first = (first + " " + words.pop(0)).strip()
    if not first:  # one very long word
        first, words = _fit_text(draw, text, width, font), []
    draw.text((x, y), first, fill=(20, 20, 20), font=font)
    if words:
        draw.text((x, y + fsize + 3), _fit_text(draw, " ".join(words), width, font), fill=(20, 20, 20), font=font)


def save_grid(
    images: Sequence[Any],
    out_path: str | Path,
    titles: Sequence[str] | None = None,
    ncols: int = 5,
    thumb: int = 128,
    highlight: Sequence[bool | None] | None = None,
    heading: str | None = None,
) -> Path:
    """`image_grid` written atomically as PNG to `out_path`; returns the path."""
    from fashionlens.utils import atomic_write

    img = image_grid(images, titles, ncols, thumb, highlight, heading)
    out_path = Path(out_path)
    with atomic_write(out_path) as tmp:
        img.save(tmp, format="PNG")
    return out_path


def groups_grid(
    groups: dict[Any, Sequence[Any]],
    n_per_group: int = 8,
    titles: dict[Any, Sequence[str]] | None = None,
    thumb: int = 96,
    label: str = "",
) -> Image.Image:
    """One row of up to `n_per_group` photos per group (cluster, class), the group name on the left."""
    if not groups:
        raise ValueError("groups_grid: no groups given")
    rows = []
    for key, imgs in groups.items():
        imgs = list(imgs)[:n_per_group]
        if not imgs:
            continue
        t = list(titles[key])[: len(imgs)] if titles is not None else None
        rows.append(image_grid(imgs, t, ncols=n_per_group, thumb=thumb, heading=f"{label}{key}"))
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return out
