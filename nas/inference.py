"""Whole-volume inference: Gaussian-weighted sliding windows, flip test-time augmentation, and
the BraTS post-processing (probabilities -> labels 0/1/2/4, small enhancing tumour removal).

The network is only a callable here (``predictor(batch) -> batch``), so this module imports
torch and numpy only and serves any model, checkpoint or ensemble.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence, Union

import numpy as np
import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]
ArrayLike = Union[torch.Tensor, np.ndarray]
IMPORTANCE_MODES = ("gaussian", "constant")


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start offsets of the windows along one axis (nnU-Net's rule).

    Consecutive windows step at most ``roi * (1 - overlap)``; the first starts at 0, the last
    ends at ``size``, and the rest are spread evenly in between, so the layout is mirror
    symmetric. An axis no longer than the window gets one window.
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


# ------------------------------------------------------------------------ BraTS labels

def _as_tensor(array: ArrayLike) -> tuple[torch.Tensor, bool]:
    if isinstance(array, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(array)), True
    return array, False


def _like_input(labels: torch.Tensor, was_numpy: bool) -> ArrayLike:
    return labels.cpu().numpy() if was_numpy else labels


def brats_probabilities_to_labels(probabilities: ArrayLike, activation: str = "softmax",
                                  channel_dim: int = 0, threshold: float = 0.5,
                                  enhancing_label: int = 4) -> ArrayLike:
    """BraTS label map (uint8) from a network's per-channel output; the channel axis goes.

    - ``"softmax"``: channels are classes 0 background, 1 necrosis/non-enhancing core,
      2 oedema, 3 enhancing tumour; the argmax becomes labels 0/1/2/``enhancing_label``
      (4 up to BraTS 2021, 3 from 2023).
    - ``"sigmoid"``: channels are the nested regions WT, TC, ET, each present above
      ``threshold``; a voxel takes the label of the innermost region it is in: ET ->
      ``enhancing_label``, else TC -> 1, else WT -> 2 (nnU-Net's region order), so the regions
      read back from the labels are nested (ET inside TC inside WT).

    Accepts a torch tensor or numpy array and returns the same kind.
    """
    probabilities, was_numpy = _as_tensor(probabilities)
    if activation == "softmax":
        if probabilities.shape[channel_dim] != 4:
            raise ValueError(f"softmax output needs 4 class channels, got "
                             f"{probabilities.shape[channel_dim]}")
        lookup = torch.tensor([0, 1, 2, enhancing_label], dtype=torch.uint8,
                              device=probabilities.device)
        labels = lookup[probabilities.argmax(dim=channel_dim)]
    elif activation == "sigmoid":
        if probabilities.shape[channel_dim] != 3:
            raise ValueError(f"sigmoid output needs 3 region channels (WT, TC, ET), got "
                             f"{probabilities.shape[channel_dim]}")
        whole, core, enhancing = (channel > threshold for channel in
                                  probabilities.unbind(dim=channel_dim))
        labels = torch.zeros(whole.shape, dtype=torch.uint8, device=probabilities.device)
        labels[whole] = 2
        labels[core] = 1
        labels[enhancing] = enhancing_label
    else:
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    return _like_input(labels, was_numpy)


def remove_small_enhancing_tumour(labels: ArrayLike, min_voxels: int = 400,
                                  replace_with: int = 1, enhancing_label: int = 4) -> ArrayLike:
    """Seed 000's post-processing of one case's label map (spatial axes only).

    "When the number of predicted enhancing-tumour voxels of a case is below the threshold
    (400), these voxels are merged into the tumour core": if 0 < #ET < ``min_voxels``, every
    ET voxel becomes ``replace_with`` (1, necrosis/non-enhancing core, so the voxels stay in
    TC and WT); a case with ``min_voxels`` or more ET voxels is unchanged. The rationale is
    BraTS' scoring: a case without ET in the reference scores ET Dice 1 only with an empty ET
    prediction. Returns a new array of the input's kind; the input is not modified.
    """
    labels, was_numpy = _as_tensor(labels)
    enhancing = labels == enhancing_label
    count = int(enhancing.sum())
    result = labels.clone()
    if 0 < count < min_voxels:
        result[enhancing] = replace_with
    return _like_input(result, was_numpy)
