"""Voxel-wise losses (cross-entropy family, sensitivity-specificity); import them from `nas.losses`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .core import (
    SegmentationLoss,
    check_prediction,
    class_log_probabilities,
    class_probabilities,
    class_targets,
    float32_region,
    register_loss,
    select_classes,
    spatial_dims_of,
)

__all__ = ["CrossEntropyLoss", "WeightedCrossEntropyLoss", "SensitivitySpecificityLoss"]


@register_loss("ce")
class CrossEntropyLoss(SegmentationLoss):
    """Plain softmax cross-entropy, mean over voxels: ``-mean_n sum_c w_c g_cn log p_cn``.

    Softmax (binary sigmoid when C == 1, then equal to BCE). ``class_weights``
    (one per class, default all 1) scale each class's term; the mean is over
    voxels, not over weights (unlike ``torch.nn.CrossEntropyLoss``).
    """

    def __init__(self, class_weights: Sequence[float] | None = None, logits: bool = True) -> None:
        super().__init__()
        self.logits = logits
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            log_probabilities = class_log_probabilities(prediction, self.logits)
            targets = class_targets(target, prediction)
            per_class = -(targets * log_probabilities)
            if self.class_weights is not None:
                if self.class_weights.numel() != per_class.shape[1]:
                    raise ValueError(
                        f"{self.class_weights.numel()} class weights for {per_class.shape[1]} classes"
                    )
                shape = (1, -1) + (1,) * (per_class.ndim - 2)
                per_class = per_class * self.class_weights.view(shape)
            return per_class.sum(1).mean()


@register_loss("weighted_ce")
class WeightedCrossEntropyLoss(SegmentationLoss):
    """Weighted cross-entropy of Sudre et al. (seed 003), softmax.

    Two-class form ``WCE = -(1/N) sum_n [w r_n log p_n + (1 - r_n) log(1 - p_n)]``
    with ``w = (N - sum_n p_n) / sum_n p_n`` per case, N the number of voxels and
    ``p_n`` the predicted foreground probability, exactly as the seed writes it.
    The multi-class extension keeps weight 1 on the background (class 0) and gives
    every other class c its own ``w_c = (N - sum_n p_cn) / sum_n p_cn``. Weights
    are constants (no gradient flows through them) and the sum is clamped to at
    least one voxel, so ``w <= N - 1`` and an empty prediction gives no inf.
    ``weight_from="target"`` uses the reference volumes ``sum_n r_cn`` instead,
    the more common reading (NiftyNet).
    """

    def __init__(self, weight_from: str = "prediction", logits: bool = True) -> None:
        super().__init__()
        if weight_from not in ("prediction", "target"):
            raise ValueError(f"weight_from must be 'prediction' or 'target', got {weight_from!r}")
        self.weight_from = weight_from
        self.logits = logits

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            log_probabilities = class_log_probabilities(prediction, self.logits)
            targets = class_targets(target, prediction)
            axes = spatial_dims_of(targets)
            voxels = targets[0, 0].numel()
            source = class_probabilities(prediction, self.logits) if self.weight_from == "prediction" else targets
            volume = source.detach().sum(axes).clamp_min(1.0)  # (N, K)
            weights = (voxels - volume) / volume
            weights[:, 0] = 1.0
            shape = weights.shape + (1,) * len(axes)
            per_voxel = -(weights.view(shape) * targets * log_probabilities).sum(1)
            return per_voxel.mean()


@register_loss("sensitivity_specificity")
class SensitivitySpecificityLoss(SegmentationLoss):
    """Sensitivity-specificity loss of Brosch et al. as written in seed 003, softmax.

    Per case and class: ``SS = lambda sum (r - p)^2 r / (sum r + eps)
    + (1 - lambda) sum (r - p)^2 (1 - r) / (sum (1 - r) + eps)`` with
    ``lambda = 0.05`` and ``eps = 1e-5``; averaged over foreground classes and
    cases. Background is excluded by default: the seed's binary form scores the
    foreground only (scoring the background too would swap the two terms' roles).
    """

    def __init__(
        self,
        sensitivity_weight: float = 0.05,
        epsilon: float = 1e-5,
        include_background: bool = False,
        logits: bool = True,
    ) -> None:
        super().__init__()
        self.sensitivity_weight = sensitivity_weight
        self.epsilon = epsilon
        self.include_background = include_background
        self.logits = logits

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            probabilities = select_classes(class_probabilities(prediction, self.logits), self.include_background)
            targets = select_classes(class_targets(target, prediction), self.include_background)
            axes = spatial_dims_of(targets)
            squared_error = (targets - probabilities).square()
            sensitivity_term = (squared_error * targets).sum(axes) / (targets.sum(axes) + self.epsilon)
            specificity_term = (squared_error * (1.0 - targets)).sum(axes) / (
                (1.0 - targets).sum(axes) + self.epsilon
            )
            weight = self.sensitivity_weight
            return (weight * sensitivity_term + (1.0 - weight) * specificity_term).mean()
