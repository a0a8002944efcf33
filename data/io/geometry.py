"""Whether two image files lie on one voxel grid: the same shape, spacing, origin and axis
directions. nnU-Net checks every channel and the label of a case against the first channel so;
channels on different grids would be stacked voxel by voxel as if they showed the same place."""

from __future__ import annotations

import numpy as np

from data.errors import millimetres

# "The same", relative: spacings within 0.1 %, origins within 0.1 % of the finest voxel size,
# direction cosines within 0.001. Far above the rounding of header fields (NIfTI stores them as
# float32, about 1e-7 relative), far below a real shift or flip (a voxel, a sign).
GRID_TOLERANCE = 1e-3


def grid_difference(geometry: dict, reference: dict, reference_name: str) -> str | None:
    """How the grid of `geometry` differs from `reference`'s (each a reader's geometry: shape,
    spacing in mm per array axis, affine from array index to mm), in words that start a one-line
    problem ("origin differs from X's by 100 mm"), or None when they are one grid. The affines
    must share a convention (both from one reader)."""
    shape, reference_shape = tuple(geometry["shape"]), tuple(reference["shape"])
    if shape != reference_shape:
        return f"shape {_cross(shape)} differs from {reference_name} {_cross(reference_shape)}"
    spacing, reference_spacing = (np.asarray(g["spacing"], dtype=np.float64) for g in (geometry, reference))
    if not np.allclose(spacing, reference_spacing, rtol=GRID_TOLERANCE, atol=0.0):
        return f"spacing {millimetres(spacing)} differs from {reference_name} {millimetres(reference_spacing)}"
    affine, reference_affine = (np.asarray(g["affine"], dtype=np.float64) for g in (geometry, reference))
    distance = float(np.linalg.norm(affine[:3, 3] - reference_affine[:3, 3]))
    if distance > GRID_TOLERANCE * float(reference_spacing.min()):
        return f"origin differs from {reference_name}'s by {distance:.3g} mm"
    directions, reference_directions = _directions(affine), _directions(reference_affine)
    if np.abs(directions - reference_directions).max() > GRID_TOLERANCE:
        cosines = np.clip(np.sum(directions * reference_directions, axis=0), -1.0, 1.0)
        angle = float(np.degrees(np.arccos(cosines.min())))
        return f"direction differs from {reference_name}'s (an axis turned by {angle:.3g}°)"
    return None


def _directions(affine: np.ndarray) -> np.ndarray:
    """Unit direction of each array axis (the affine's columns over their lengths, the spacings)."""
    columns = affine[:3, :3]
    return columns / np.maximum(np.linalg.norm(columns, axis=0), 1e-12)


def _cross(shape: tuple) -> str:
    return "x".join(map(str, shape))


__all__ = ["GRID_TOLERANCE", "grid_difference"]
