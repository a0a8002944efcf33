"""Shared machinery of the segmentation losses: base class, registry, input handling.

Use `nas.losses` (the public face); this module only exists so that the loss
families can register themselves without importing each other.

Conventions every loss follows:

- ``prediction`` holds raw logits ``(N, C, *spatial)`` (any number of spatial
  dims); ``logits=False`` means it already holds probabilities.
- Softmax losses treat ``C == 1`` as a binary problem: the channel is the
  foreground logit, ``sigmoid`` gives ``p`` and the classes are ``[1 - p, p]``.
- Targets of softmax losses: int class indices ``(N, *spatial)`` or
  ``(N, 1, *spatial)`` with values ``0..C-1`` (``0..1`` when ``C == 1``), or a
  float/one-hot tensor of the prediction's shape.
- Targets of sigmoid (region) losses: a float tensor of the prediction's shape.
- Everything is computed in float32 with autocast disabled, so bf16 autocast
  cannot underflow the sums.
"""

from __future__ import annotations

import difflib
from contextlib import AbstractContextManager
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SegmentationLoss", "LOSSES", "register_loss", "build", "list_losses", "activation_of"]

# MONAI's defaults: small enough to leave any non-empty ratio unchanged, large
# enough that an empty class with an empty prediction gives 1 (and no 0/0).
SMOOTH_NUMERATOR = 1e-5
SMOOTH_DENOMINATOR = 1e-5


class SegmentationLoss(nn.Module):
    """Base of every loss: a module with ``forward(prediction, target)`` and ``set_epoch``.

    The training engine calls ``set_epoch(epoch, total_epochs)`` on whatever loss
    it holds at the start of each epoch; losses without a schedule ignore it.
    """

    #: The activation the loss applies to the logits: "softmax" over classes (one channel is
    #: read as a binary foreground logit), or "sigmoid" per channel (masks, regions).
    output_activation = "softmax"

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        """Tell the loss which epoch starts (0-based) out of ``total_epochs``; no-op here."""


#: name -> loss class, filled by `register_loss` (a plain dict: this package imports torch only).
LOSSES: dict[str, type[SegmentationLoss]] = {}


def register_loss(name: str) -> Callable[[type[SegmentationLoss]], type[SegmentationLoss]]:
    """Class decorator filing a loss under ``name``; a second loss of that name is an error."""

    def decorator(loss_class: type[SegmentationLoss]) -> type[SegmentationLoss]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is already registered (by {LOSSES[name]!r})")
        LOSSES[name] = loss_class
        return loss_class

    return decorator


def list_losses() -> list[str]:
    """Names accepted by `build`, sorted."""
    return sorted(LOSSES)


def activation_of(name: str) -> str:
    """The output activation loss ``name`` trains: ``"softmax"`` or ``"sigmoid"``."""
    if name not in LOSSES:
        build(name)  # the unknown-name error, with close matches
    return LOSSES[name].output_activation


def build(name: str, **kwargs: object) -> SegmentationLoss:
    """Construct the loss registered as ``name``; keyword arguments that are None are dropped.

    Dropping None lets an unset command-line flag fall through to the loss's default.
    """
    if name not in LOSSES:
        close = difflib.get_close_matches(str(name), list(LOSSES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown loss {name!r}.{hint} Valid: {', '.join(list_losses())}")
    loss_class = LOSSES[name]
    return loss_class(**{key: value for key, value in kwargs.items() if value is not None})


def float32_region(tensor: torch.Tensor) -> AbstractContextManager:
    """Context that disables autocast on ``tensor``'s device, so reductions stay float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def spatial_dims_of(tensor: torch.Tensor) -> tuple[int, ...]:
    """Indices of the spatial axes of an ``(N, C, *spatial)`` tensor."""
    return tuple(range(2, tensor.ndim))


def check_prediction(prediction: torch.Tensor) -> None:
    if prediction.ndim < 3:
        raise ValueError(f"prediction must be (N, C, *spatial), got shape {tuple(prediction.shape)}")


def class_probabilities(prediction: torch.Tensor, logits: bool) -> torch.Tensor:
    """Float32 class probabilities ``(N, K, *spatial)``; one channel becomes ``[1 - p, p]``."""
    prediction = prediction.float()
    if prediction.shape[1] == 1:
        foreground = torch.sigmoid(prediction) if logits else prediction
        return torch.cat([1.0 - foreground, foreground], dim=1)
    return torch.softmax(prediction, dim=1) if logits else prediction


def class_log_probabilities(prediction: torch.Tensor, logits: bool) -> torch.Tensor:
    """Float32 log-probabilities; from logits via log_softmax / logsigmoid, which never gives -inf."""
    prediction = prediction.float()
    if not logits:
        # Probabilities given: clamp so log(0) stays finite.
        return torch.log(class_probabilities(prediction, logits=False).clamp_min(1e-12))
    if prediction.shape[1] == 1:
        return torch.cat([F.logsigmoid(-prediction), F.logsigmoid(prediction)], dim=1)
    return F.log_softmax(prediction, dim=1)


def class_targets(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """Float32 one-hot (or soft) targets ``(N, K, *spatial)`` matching `class_probabilities`."""
    channels = prediction.shape[1]
    num_classes = 2 if channels == 1 else channels
    spatial_shape = prediction.shape[2:]
    if target.is_floating_point() or target.dtype == torch.bool or (
        channels > 1 and target.shape == prediction.shape
    ):
        # One-hot or soft targets (an integer one-hot counts too when C > 1).
        if target.shape != prediction.shape:
            raise ValueError(
                f"a float/bool target must have the prediction's shape {tuple(prediction.shape)}, "
                f"got {tuple(target.shape)}; class indices must be an integer tensor"
            )
        target = target.float()
        return torch.cat([1.0 - target, target], dim=1) if channels == 1 else target
    if target.ndim == prediction.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != (prediction.shape[0], *spatial_shape):
        raise ValueError(
            f"class-index target must be (N, *spatial) = {(prediction.shape[0], *spatial_shape)} "
            f"or (N, 1, *spatial), got {tuple(target.shape)}"
        )
    # the range check reads the labels on the host, which a CUDA graph's capture cannot (the
    # search's --cuda-graph): there the eager warm-up steps check, and CUDA's one_hot asserts
    capturing = target.is_cuda and torch.cuda.is_current_stream_capturing()
    if target.numel() and not capturing and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"class indices must lie in 0..{num_classes - 1}, got {int(target.min())}..{int(target.max())}"
            " (BraTS label 4 must be mapped to 3 for a 4-class softmax)"
        )
    return F.one_hot(target.long(), num_classes).movedim(-1, 1).float()


def region_targets(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """Float32 targets for sigmoid losses: the prediction's shape; ``(N, *spatial)`` allowed when C == 1."""
    if prediction.shape[1] == 1 and target.ndim == prediction.ndim - 1:
        target = target.unsqueeze(1)
    if target.shape != prediction.shape:
        raise ValueError(
            f"a sigmoid/region target must have the prediction's shape {tuple(prediction.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return target.float()


def region_probabilities(prediction: torch.Tensor, logits: bool) -> torch.Tensor:
    """Float32 per-channel sigmoid probabilities."""
    prediction = prediction.float()
    return torch.sigmoid(prediction) if logits else prediction


def select_classes(tensor: torch.Tensor, include_background: bool) -> torch.Tensor:
    """Drop class 0 (background) unless asked to keep it."""
    return tensor if include_background else tensor[:, 1:]


def soft_dice_per_class(
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    squared_denominator: bool = False,
    batch: bool = False,
    smooth_numerator: float = SMOOTH_NUMERATOR,
    smooth_denominator: float = SMOOTH_DENOMINATOR,
) -> torch.Tensor:
    """Soft Dice ``(2 sum pg + s_nr) / (sum p + sum g + s_dr)`` per case and class: ``(N, K)``.

    ``squared_denominator`` sums ``p^2`` and ``g^2`` instead (Milletari, Myronenko);
    ``batch`` sums over the batch too (nnU-Net's batch Dice) and returns ``(1, K)``.
    """
    axes = spatial_dims_of(probabilities)
    if batch:
        axes = (0, *axes)
    intersection = (probabilities * targets).sum(axes)
    if squared_denominator:
        denominator = (probabilities * probabilities).sum(axes) + (targets * targets).sum(axes)
    else:
        denominator = probabilities.sum(axes) + targets.sum(axes)
    dice = (2.0 * intersection + smooth_numerator) / (denominator + smooth_denominator)
    return dice.reshape(-1, probabilities.shape[1])


def class_weights_from_volume(
    volumes: torch.Tensor, epsilon: float = 0.0
) -> torch.Tensor:
    """Per-case class weights ``1 / (volume^2 + epsilon)``, rescaled so each case's largest is 1.

    The losses using them are ratios of weighted sums, so the rescaling leaves
    their value unchanged; it only keeps the 1e-5 smoothing negligible beside
    weights that would otherwise be ~1e-8. With ``epsilon == 0`` an empty class
    (infinite weight) gets the largest weight of the present classes, as in MONAI's
    Generalised Dice; a case with no present class gets weight 1 everywhere.
    """
    volumes = volumes.detach().float()
    weights = 1.0 / (volumes * volumes + epsilon)
    infinite = torch.isinf(weights)
    finite = weights.masked_fill(infinite, 0.0)
    largest_finite = finite.amax(dim=1, keepdim=True)
    largest_finite = torch.where(largest_finite > 0, largest_finite, torch.ones_like(largest_finite))
    weights = torch.where(infinite, largest_finite, finite)
    return weights / weights.amax(dim=1, keepdim=True)
