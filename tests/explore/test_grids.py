"""Photo grids: layout, titles, hit/miss frames, bad photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.explore.grids import HIT, MISS, groups_grid, image_grid, save_grid
from tests.conftest import write_image


def _photos(tmp_path: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    return [write_image(tmp_path / f"{i}.jpg", tuple(int(v) for v in rng.integers(0, 200, 3))) for i in range(n)]


def test_save_grid_layout_titles_and_frames(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 7)
    out = save_grid(paths, tmp_path / "g" / "grid.png", titles=[f"item {i}" for i in range(7)], ncols=3, thumb=64,
                    highlight=[True, False, None, True, False, None, True])
    img = Image.open(out).convert("RGB")
    assert out.name == "grid.png" and img.width == 3 * (64 + 12)
    rows = 3
    assert img.height > rows * (64 + 12)  # titles add height
    a = np.asarray(img)
    # frame of item 0 (hit) is green, item 1 (miss) red, item 2 has none (white margin)
    x0, y0 = 6 - 3, 6 - 3
    assert tuple(a[y0 + 20, x0]) == HIT
    assert tuple(a[y0 + 20, 76 + x0]) == MISS
    assert tuple(a[y0 + 20, 2 * 76 + x0]) == (255, 255, 255)
    # titles were drawn: dark pixels below the first photo
    assert (a[6 + 64 + 3 : 6 + 64 + 15, 6 : 6 + 64] < 100).any()


def test_grid_accepts_pil_and_letterboxes(tmp_path: Path) -> None:
    tall = Image.new("RGB", (20, 80), (0, 0, 255))
    g = np.asarray(image_grid([tall, _photos(tmp_path, 1)[0]], ncols=2, thumb=40))
    # a 20x80 photo fits the 40 px square as 10x40: white on both sides, blue in the middle
    assert tuple(g[6 + 20, 6 + 2]) == (255, 255, 255)
    assert g[6 + 20, 6 + 20, 2] > 200 and g[6 + 20, 6 + 20, 0] < 50


def test_grid_bad_inputs(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 2)
    with pytest.raises(ValueError, match="titles"):
        image_grid(paths, titles=["only one"])
    with pytest.raises(ValueError, match="no images"):
        image_grid([])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="broken.jpg"):
        g = np.asarray(image_grid([broken, paths[0]], ncols=2, thumb=32))
    assert tuple(g[6 + 2, 6 + 2]) == (200, 200, 200)  # grey tile, the other photo still drawn


def test_groups_grid_one_row_per_group(tmp_path: Path) -> None:
    paths = _photos(tmp_path, 6)
    g = groups_grid({"a": paths[:4], "b": paths[4:]}, n_per_group=3, thumb=32)
    single = image_grid(paths[:3], ncols=3, thumb=32, heading="a")
    assert g.width == single.width and g.height == 2 * single.height
