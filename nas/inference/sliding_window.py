"""Whole-volume inference: Gaussian-weighted sliding windows and flip test-time augmentation.

The network is only a callable here (``predictor(batch) -> batch``), so this module imports
torch only and serves any model, checkpoint or ensemble (MONAI's
``sliding_window_inference`` pattern; the tests cross-check it against MONAI).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]
IMPORTANCE_MODES = ("gaussian", "constant")


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start offsets of the windows along one axis (nnU-Net's rule).

    Consecutive windows step at most ``roi * (1 - overlap)``; the first starts at 0, the last
    ends at ``size``, and the rest are spread evenly in between (rounded to whole voxels as
    nnU-Net rounds them, half to even), so the layout is mirror symmetric up to that rounding.
    An axis no longer than the window gets one window.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= roi:
        return [0]
    count = math.ceil((size - roi) / (roi * (1.0 - overlap))) + 1
    return [round(index * (size - roi) / (count - 1)) for index in range(count)]


def importance_map(roi_size: Sequence[int], mode: str = "gaussian", sigma_scale: float = 0.125,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Per-voxel weight of a window's prediction, shaped ``roi_size``, maximum 1.

    ``"gaussian"`` (nnU-Net): a separable Gaussian centred on the window with sigma
    ``sigma_scale * roi`` per axis, so a window's border voxels, which see the least context,
    count least where windows overlap; centred at ``(n - 1) / 2`` so it is mirror symmetric.
    Zeros (underflow at tiny sigmas) are raised to the smallest positive weight, so every voxel
    keeps a defined average. ``"constant"``: plain averaging.
    """
    if mode not in IMPORTANCE_MODES:
        raise ValueError(f"mode must be one of {IMPORTANCE_MODES}, got {mode!r}")
    if mode == "constant":
        return torch.ones(tuple(roi_size), device=device)
    if sigma_scale <= 0:
        raise ValueError(f"sigma_scale must be positive, got {sigma_scale}")
    weights = torch.ones((), dtype=torch.float64)
    for axis, size in enumerate(roi_size):
        coordinates = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
        profile = torch.exp(-0.5 * (coordinates / (sigma_scale * size)) ** 2)
        shape = [1] * len(roi_size)
        shape[axis] = size
        weights = weights * profile.view(shape)
    weights = (weights / weights.max()).float()
    positive = weights[weights > 0]
    weights = torch.where(weights > 0, weights, positive.min())
    return weights.to(device)


def flip_axes_subsets(spatial_dims: int,
                      axes: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Every subset of the flipped spatial axes (as tensor dims of an (N, C, ...) batch):
    8 for the 3 axes of a volume, the empty one (no flip) first."""
    axes = tuple(range(spatial_dims)) if axes is None else tuple(axes)
    for axis in axes:
        if not 0 <= axis < spatial_dims:
            raise ValueError(f"flip axis {axis} is not one of the {spatial_dims} spatial axes")
    return [tuple(2 + axis for axis in subset)
            for count in range(len(axes) + 1) for subset in itertools.combinations(axes, count)]


def predict_with_flips(predictor: Predictor, batch: torch.Tensor,
                       flips: Sequence[tuple[int, ...]] = ((),)) -> torch.Tensor:
    """Mean of ``predictor`` over flipped copies of ``batch``, each flipped back first.

    A predictor returning a tuple (e.g. a VAE network in training mode) contributes its first
    element. The mean is taken in the predictor's output space.
    """
    total = None
    for dims in flips:
        output = predictor(batch.flip(dims) if dims else batch)
        if isinstance(output, (tuple, list)):
            output = output[0]
        output = output.flip(dims) if dims else output
        total = output.float() if total is None else total + output.float()
    return total / len(flips)


def _pad_to_window(volume: torch.Tensor, roi: Sequence[int], value: float
                   ) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad axes shorter than the window evenly on both sides; return the crop that undoes it."""
    pad: list[int] = []
    crop = []
    for size, window in zip(volume.shape[2:], roi):
        missing = max(window - size, 0)
        before = missing // 2
        pad = [before, missing - before] + pad  # torch pads the last axis first
        crop.append(slice(before, before + size))
    if any(pad):
        volume = torch.nn.functional.pad(volume, pad, value=value)
    return volume, (slice(None), slice(None)) + tuple(crop)


def sliding_window_inference(
    volume: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Predictor,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    device: torch.device | str | None = None,
    output_device: torch.device | str | None = None,
    tta_flips: bool | Sequence[int] = False,
    padding_value: float = 0.0,
) -> torch.Tensor:
    """Predict a whole ``(N, C, *spatial)`` volume from ``roi_size`` windows.

    Windows overlap by ``overlap`` (see :func:`window_starts`); each prediction is weighted by
    :func:`importance_map` and the weighted sum divided by the summed weights, so a predictor
    returning a constant gives that constant back everywhere. The average is taken in the
    predictor's output space: pass a predictor that returns probabilities (e.g.
    ``lambda x: net(x).softmax(1)``) to average probabilities, one that returns logits to
    average logits. Volumes smaller than the window are padded with ``padding_value`` (evenly
    on both sides) and cropped back.

    ``tta_flips``: ``True`` averages every subset of the spatial flips (8 in 3D) per window,
    each prediction flipped back; a sequence of spatial axes (0-based) flips those only.
    ``sw_batch_size`` windows are predicted per call, on ``device`` (default: the volume's);
    the result is accumulated in float32 on ``output_device`` (default: the volume's) and has
    shape ``(N, K, *spatial)`` for a predictor with K output channels. Runs without autograd.
    """
    if volume.dim() < 3:
        raise ValueError(f"volume must be (N, C, *spatial), got shape {tuple(volume.shape)}")
    spatial_dims = volume.dim() - 2
    roi = ((int(roi_size),) * spatial_dims if isinstance(roi_size, int)
           else tuple(int(r) for r in roi_size))
    if len(roi) != spatial_dims or min(roi) < 1:
        raise ValueError(f"roi_size {roi_size} does not fit a volume of shape "
                         f"{tuple(volume.shape)} (one positive size per spatial axis)")
    if sw_batch_size < 1:
        raise ValueError(f"sw_batch_size must be at least 1, got {sw_batch_size}")
    device = torch.device(device) if device is not None else volume.device
    output_device = torch.device(output_device) if output_device is not None else volume.device
    if tta_flips is True:
        flips = flip_axes_subsets(spatial_dims)
    elif tta_flips is False or tta_flips is None:
        flips = [()]
    else:
        flips = flip_axes_subsets(spatial_dims, tta_flips)

    padded, crop = _pad_to_window(volume, roi, padding_value)
    shape = tuple(padded.shape[2:])
    windows = [tuple(slice(start, start + size) for start, size in zip(starts, roi))
               for starts in itertools.product(*(window_starts(s, r, overlap)
                                                 for s, r in zip(shape, roi)))]
    weight = importance_map(roi, mode, sigma_scale, output_device)
    weight_sum = torch.zeros(shape, device=output_device)
    for window in windows:
        weight_sum[window] += weight

    output = None
    with torch.no_grad():
        for case in range(padded.shape[0]):
            for first in range(0, len(windows), sw_batch_size):
                chunk = windows[first:first + sw_batch_size]
                batch = torch.cat([padded[(slice(case, case + 1), slice(None)) + window]
                                   for window in chunk]).to(device)
                predicted = predict_with_flips(predictor, batch, flips)
                if tuple(predicted.shape[2:]) != roi or predicted.shape[0] != len(chunk):
                    raise ValueError(f"the predictor must keep the window's batch and spatial "
                                     f"size {roi}, got {tuple(predicted.shape)}")
                if output is None:
                    output = torch.zeros((padded.shape[0], predicted.shape[1]) + shape,
                                         device=output_device)
                predicted = predicted.to(output_device) * weight
                for tile, window in zip(predicted, chunk):
                    output[(case, slice(None)) + window] += tile
    output /= weight_sum
    return output[crop]
