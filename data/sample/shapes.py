"""Drawing helpers for the synthetic sample data: ellipses, ellipsoids, texture."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ellipsoid(shape: tuple[int, ...], centre: np.ndarray | tuple[float, ...],
              radii: np.ndarray | tuple[float, ...], angle: float = 0.0) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipse/ellipsoid, rotated by `angle` in the last two axes."""
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    offsets = [g - c for g, c in zip(grids, centre)]
    if angle:
        a, b = offsets[-2], offsets[-1]
        cos, sin = np.cos(angle), np.sin(angle)
        offsets[-2], offsets[-1] = cos * a - sin * b, sin * a + cos * b
    return sum((o / r) ** 2 for o, r in zip(offsets, radii)) <= 1.0


def texture(shape: tuple[int, ...], rng: np.random.Generator, scale: float, smooth: float) -> np.ndarray:
    """Smooth random field of standard deviation ~`scale`: tissue that is not flat."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), smooth)
    return field / (field.std() + 1e-9) * scale
