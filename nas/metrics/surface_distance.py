"""Surface distances between two binary masks, in millimetres; import them from `nas.metrics`.

Surfaces and distances follow MONAI: a mask's surface is the mask minus its
binary erosion (face connectivity; voxels on the array border count as
surface), and each surface voxel's distance to the other surface comes from
``scipy.ndimage.distance_transform_edt(..., sampling=spacing)``, so anisotropic
voxels are measured exactly. Depends on numpy, scipy and torch only.

Empty masks follow the BraTS convention: both empty gives 0 mm; exactly one
empty gives ``empty_distance``, by default the image diagonal in mm,
``sqrt(sum_i (shape_i * spacing_i)^2)`` (373.13 mm for a 240x240x155 volume at
1 mm, the value BraTS reports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "as_mask",
    "resolve_spacing",
    "image_diagonal",
    "surface_voxels",
    "directed_surface_distances",
    "surface_distance_scores",
    "hausdorff_distance",
    "hd95",
    "average_symmetric_surface_distance",
]

ArrayLike = Union[np.ndarray, torch.Tensor]


def to_numpy(array: ArrayLike) -> np.ndarray:
    """A numpy view of a numpy array or (any-device) tensor."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def as_mask(array: ArrayLike) -> np.ndarray:
    """Boolean mask: bool as is, floating point ``> 0.5``, integers ``!= 0``."""
    array = to_numpy(array)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return array > 0.5
    return array != 0


def resolve_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Voxel spacing per axis in mm; None means 1 mm on every axis."""
    if spacing is None:
        return (1.0,) * ndim
    spacing = tuple(float(value) for value in spacing)
    if len(spacing) != ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for a {ndim}-D array")
    if any(value <= 0 for value in spacing):
        raise ValueError(f"spacing must be positive, got {spacing}")
    return spacing


def image_diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Length in mm of the image's diagonal, ``sqrt(sum (shape_i * spacing_i)^2)``."""
    spacing = resolve_spacing(spacing, len(shape))
    return math.sqrt(sum((size * step) ** 2 for size, step in zip(shape, spacing)))


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """The mask's voxels with a face neighbour outside it (or on the array border)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _union_bounding_box(first: np.ndarray, second: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of both masks grown by one voxel: distances between the two
    surfaces never leave it, and cropping makes whole-brain volumes cheap."""
    occupied = np.argwhere(first | second)
    low = np.maximum(occupied.min(axis=0) - 1, 0)
    high = np.minimum(occupied.max(axis=0) + 2, first.shape)
    return tuple(slice(start, stop) for start, stop in zip(low, high))


def directed_surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each prediction surface voxel to the truth surface, and back.

    Both masks must be non-empty booleans of one shape.
    """
    box = _union_bounding_box(pred, truth)
    pred_surface = surface_voxels(pred[box])
    truth_surface = surface_voxels(truth[box])
    # Distance of every voxel to the nearest surface voxel of the other mask.
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_truth[pred_surface], to_pred[truth_surface]


def _checked_pair(
    pred: ArrayLike, truth: ArrayLike, spacing: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    pred, truth = as_mask(pred), as_mask(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != truth shape {truth.shape}")
    return pred, truth, resolve_spacing(spacing, pred.ndim)


def surface_distance_scores(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    empty_distance: float | None = None,
    percentile: float = 95.0,
) -> dict[str, float]:
    """``hd``, ``hd95`` (or the given percentile) and ``assd`` in mm from one distance computation.

    HD = max of the two directed maxima; HD95 = max of the two directed 95th
    percentiles (MONAI, BraTS; numpy's linear interpolation); ASSD = mean of all
    distances of both directions pooled, ``(sum d(P->T) + sum d(T->P)) / (|dP| + |dT|)``.
    Empty masks: both empty 0; one empty ``empty_distance`` (default: the image
    diagonal in mm) for all three.
    """
    pred, truth, spacing = _checked_pair(pred, truth, spacing)
    pred_empty, truth_empty = not pred.any(), not truth.any()
    if pred_empty and truth_empty:
        return {"hd": 0.0, "hd95": 0.0, "assd": 0.0}
    if pred_empty or truth_empty:
        worst = image_diagonal(pred.shape, spacing) if empty_distance is None else float(empty_distance)
        return {"hd": worst, "hd95": worst, "assd": worst}
    pred_to_truth, truth_to_pred = directed_surface_distances(pred, truth, spacing)
    return {
        "hd": float(max(pred_to_truth.max(), truth_to_pred.max())),
        "hd95": float(max(np.percentile(pred_to_truth, percentile), np.percentile(truth_to_pred, percentile))),
        "assd": float(
            (pred_to_truth.sum() + truth_to_pred.sum()) / (pred_to_truth.size + truth_to_pred.size)
        ),
    }


def hausdorff_distance(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    percentile: float = 100.0,
    empty_distance: float | None = None,
) -> float:
    """Symmetric Hausdorff distance in mm; ``percentile < 100`` gives the robust form (HD95 at 95).

    Both masks empty: 0. Exactly one empty: ``empty_distance``, by default the
    image diagonal in mm (BraTS convention, 373.13 mm at 240x240x155, 1 mm).
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    scores = surface_distance_scores(pred, truth, spacing, empty_distance, percentile)
    return scores["hd"] if percentile == 100.0 else scores["hd95"]


def hd95(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    empty_distance: float | None = None,
) -> float:
    """95th-percentile Hausdorff distance in mm: max of the two directed 95th percentiles.

    Empty masks as `hausdorff_distance`: both empty 0, one empty the image diagonal.
    """
    return surface_distance_scores(pred, truth, spacing, empty_distance)["hd95"]


def average_symmetric_surface_distance(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    empty_distance: float | None = None,
) -> float:
    """ASSD in mm: mean distance of every surface voxel of either mask to the other surface.

    Empty masks as `hausdorff_distance`: both empty 0, one empty the image diagonal.
    """
    return surface_distance_scores(pred, truth, spacing, empty_distance)["assd"]
