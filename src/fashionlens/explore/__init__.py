"""Explore a catalog: clusters, 2-D maps, photo grids, near-duplicates, Grad-CAM and why-similar maps."""

from fashionlens.explore.grids import image_grid, save_grid

__all__ = ["image_grid", "save_grid"]
