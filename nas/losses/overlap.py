"""Overlap (Dice / Jaccard / Tversky) losses; import them from `nas.losses`.

Each computes its ratio per case (sums over the spatial axes) and averages the
loss over the batch. Smoothing: 1e-5 added to numerator and denominator
(MONAI's default), so an empty class predicted empty scores a perfect 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .core import (
    SMOOTH_DENOMINATOR,
    SMOOTH_NUMERATOR,
    SegmentationLoss,
    check_prediction,
    class_probabilities,
    class_targets,
    class_weights_from_volume,
    float32_region,
    region_probabilities,
    region_targets,
    register_loss,
    select_classes,
    soft_dice_per_class,
    spatial_dims_of,
)
from .voxelwise import CrossEntropyLoss

__all__ = [
    "DiceLoss",
    "SigmoidDiceLoss",
    "BCEDiceLoss",
    "MixedDiceJaccardLoss",
    "GeneralisedDiceLoss",
    "WeightedTverskyLoss",
    "VAELoss",
]


@register_loss("dice")
class DiceLoss(SegmentationLoss):
    """Soft Dice over softmax classes: ``1 - mean_{cases, classes} (2 sum pg + s) / (sum p + sum g + s)``.

    Softmax (sigmoid with ``[1 - p, p]`` when C == 1). Background (class 0) is
    excluded by default, as in nnU-Net and MONAI practice. ``batch=True`` sums
    over the batch before the ratio (nnU-Net's batch Dice); ``squared_denominator``
    uses ``sum p^2 + sum g^2`` (Milletari).
    """

    def __init__(
        self,
        include_background: bool = False,
        logits: bool = True,
        squared_denominator: bool = False,
        batch: bool = False,
        smooth_numerator: float = SMOOTH_NUMERATOR,
        smooth_denominator: float = SMOOTH_DENOMINATOR,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.logits = logits
        self.squared_denominator = squared_denominator
        self.batch = batch
        self.smooth_numerator = smooth_numerator
        self.smooth_denominator = smooth_denominator

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            probabilities = select_classes(class_probabilities(prediction, self.logits), self.include_background)
            targets = select_classes(class_targets(target, prediction), self.include_background)
            dice = soft_dice_per_class(
                probabilities, targets, self.squared_denominator, self.batch,
                self.smooth_numerator, self.smooth_denominator,
            )
            return 1.0 - dice.mean()


@register_loss("dice_sigmoid")
class SigmoidDiceLoss(SegmentationLoss):
    """Soft Dice per sigmoid channel (each channel a region, e.g. WT/TC/ET), averaged.

    Sigmoid on each channel; target: float masks of the prediction's shape.
    ``channel_reduction="sum"`` adds the per-region losses instead (Myronenko).
    """

    output_activation = "sigmoid"

    def __init__(
        self,
        logits: bool = True,
        squared_denominator: bool = False,
        batch: bool = False,
        channel_reduction: str = "mean",
        smooth_numerator: float = SMOOTH_NUMERATOR,
        smooth_denominator: float = SMOOTH_DENOMINATOR,
    ) -> None:
        super().__init__()
        if channel_reduction not in ("mean", "sum"):
            raise ValueError(f"channel_reduction must be 'mean' or 'sum', got {channel_reduction!r}")
        self.logits = logits
        self.squared_denominator = squared_denominator
        self.batch = batch
        self.channel_reduction = channel_reduction
        self.smooth_numerator = smooth_numerator
        self.smooth_denominator = smooth_denominator

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            dice = soft_dice_per_class(
                region_probabilities(prediction, self.logits), region_targets(target, prediction),
                self.squared_denominator, self.batch, self.smooth_numerator, self.smooth_denominator,
            )
            per_case = (1.0 - dice).sum(dim=1) if self.channel_reduction == "sum" else (1.0 - dice).mean(dim=1)
            return per_case.mean()


@register_loss("bce_dice")
class BCEDiceLoss(SegmentationLoss):
    """BCE + soft Dice on sigmoid outputs: the 2D search's loss (seed 002, eq. 12-14).

    ``bce_weight * mean BCE + dice_weight * (1 - soft Dice)``. Two deliberate
    departures from the seed: BCE is the mean over pixels, not the sum of eq. 13
    (a sum grows with image size and would swamp Dice and the cost penalties), and
    Dice is soft (the seed thresholds at 0.5, which has no gradient).
    """

    output_activation = "sigmoid"

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, logits: bool = True) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.logits = logits
        self.dice = SigmoidDiceLoss(logits=logits)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            targets = region_targets(target, prediction)
            if self.logits:
                bce = F.binary_cross_entropy_with_logits(prediction.float(), targets)
            else:
                bce = F.binary_cross_entropy(prediction.float().clamp(1e-7, 1 - 1e-7), targets)
            return self.bce_weight * bce + self.dice_weight * self.dice(prediction, targets)


@register_loss("ce_dice")
class CEDiceLoss(SegmentationLoss):
    """Softmax cross-entropy + soft Dice of the foreground classes (nnU-Net's default loss):
    the loss of the multi-class 2D tasks, as ``bce_dice`` is of the binary ones.

    ``ce_weight * CE + dice_weight * (1 - soft Dice)``; targets are class indices or one-hot.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, logits: bool = True,
                 batch: bool = False) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.ce = CrossEntropyLoss(logits=logits)
        self.dice = DiceLoss(include_background=False, logits=logits, batch=batch)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce_weight * self.ce(prediction, target) + self.dice_weight * self.dice(prediction, target)


def _weighted_overlap_sums(
    prediction: torch.Tensor, target: torch.Tensor, logits: bool, include_background: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per case and class: sum p, sum g, sum pg, each (N, K)."""
    probabilities = select_classes(class_probabilities(prediction, logits), include_background)
    targets = select_classes(class_targets(target, prediction), include_background)
    axes = spatial_dims_of(probabilities)
    return probabilities.sum(axes), targets.sum(axes), (probabilities * targets).sum(axes)


@register_loss("mixed_dice_jaccard")
class MixedDiceJaccardLoss(SegmentationLoss):
    """Weighted mixed Dice/Jaccard loss of MFS-Net (seed 000, eq. 11-12), softmax.

    ``L = (1 - a) * (1 - 2 sum_k w_k I_k / sum_k w_k (P_k + G_k))
         + b * a * (1 - sum_k w_k I_k / sum_k w_k (P_k + G_k - I_k))``

    with ``I_k = sum_i p_ik g_ik``, ``P_k = sum_i p_ik``, ``G_k = sum_i g_ik`` per case,
    class weights ``w_k = 1 / G_k^2`` (empty class: the largest present weight),
    ``b = beta = 2`` and the schedule ``a = epoch / total_epochs`` set by
    `set_epoch` (0-based epoch, so a = 0 in the first epoch: pure Dice, rising
    linearly towards the Jaccard term; a = 0 until `set_epoch` is called).
    Pass ``alpha`` to fix ``a`` instead. The seed's printed eq. 12 is garbled in
    its second term; this is eq. 11 with eq. 12's weights, the only reading that
    reduces to eq. 11 for equal weights. Background is included (the seed's K = 4
    labels count it).
    """

    def __init__(
        self,
        beta: float = 2.0,
        alpha: float | None = None,
        include_background: bool = True,
        logits: bool = True,
    ) -> None:
        super().__init__()
        self.beta = beta
        self.fixed_alpha = alpha
        self.alpha = 0.0 if alpha is None else float(alpha)
        self.include_background = include_background
        self.logits = logits

    def set_epoch(self, epoch: int, total_epochs: int) -> None:
        if self.fixed_alpha is None:
            if total_epochs <= 0:
                raise ValueError(f"total_epochs must be positive, got {total_epochs}")
            self.alpha = min(max(epoch / total_epochs, 0.0), 1.0)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            predicted, truth, intersection = _weighted_overlap_sums(
                prediction, target, self.logits, self.include_background
            )
            weights = class_weights_from_volume(truth)
            weighted_intersection = (weights * intersection).sum(1)
            weighted_total = (weights * (predicted + truth)).sum(1)
            dice = (2.0 * weighted_intersection + SMOOTH_NUMERATOR) / (weighted_total + SMOOTH_DENOMINATOR)
            jaccard = (weighted_intersection + SMOOTH_NUMERATOR) / (
                weighted_total - weighted_intersection + SMOOTH_DENOMINATOR
            )
            loss = (1.0 - self.alpha) * (1.0 - dice) + self.beta * self.alpha * (1.0 - jaccard)
            return loss.mean()


@register_loss("generalised_dice")
class GeneralisedDiceLoss(SegmentationLoss):
    """Generalised Dice loss GDL_v of Sudre et al. (seed 003), softmax.

    ``GDL = 1 - 2 sum_l w_l sum_n r_ln p_ln / sum_l w_l sum_n (r_ln + p_ln)``,
    ``w_l = 1 / (sum_n r_ln)^2`` per case (empty class: the largest present
    weight, as MONAI), averaged over the batch. Background is included, as in the
    seed's two-label form; ``batch=True`` pools the whole batch into one sum.
    """

    def __init__(self, include_background: bool = True, batch: bool = False, logits: bool = True) -> None:
        super().__init__()
        self.include_background = include_background
        self.batch = batch
        self.logits = logits

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            predicted, truth, intersection = _weighted_overlap_sums(
                prediction, target, self.logits, self.include_background
            )
            if self.batch:
                predicted, truth, intersection = (t.sum(0, keepdim=True) for t in (predicted, truth, intersection))
            weights = class_weights_from_volume(truth)
            numerator = 2.0 * (weights * intersection).sum(1) + SMOOTH_NUMERATOR
            denominator = (weights * (truth + predicted)).sum(1) + SMOOTH_DENOMINATOR
            return (1.0 - numerator / denominator).mean()


@register_loss("tversky_weighted")
class WeightedTverskyLoss(SegmentationLoss):
    """Class-weighted Tversky loss of MF-RES2Net (seed 004, eq. 6-8), softmax.

    ``1 - sum_l w_l TP_l / sum_l w_l (TP_l + alpha FP_l + beta FN_l)`` per case,
    ``TP = sum p g``, ``FP = sum p (1 - g)``, ``FN = sum (1 - p) g``,
    ``w_l = 1 / ((sum g_l)^2 + 1e-4)`` (seed eq. 7). The seed gives no alpha/beta;
    the defaults 0.3 (false positives) / 0.7 (false negatives) are those of the
    Tversky paper it cites (Salehi et al. 2017). The seed's text swaps the FP/FN
    names of ``p0 g1`` and ``p1 g0``; the formula (p0 g1 = prediction where the truth
    is absent = FP) is followed here. Eq. 8 prints the weights outside the FP/FN
    terms by a typesetting slip; they weight every term here. Note that an empty
    class gets the largest weight (1e4) and so dominates, as the seed's formula
    implies. Background is included (the seed sums over all k labels).
    """

    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        weight_epsilon: float = 1e-4,
        include_background: bool = True,
        logits: bool = True,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.weight_epsilon = weight_epsilon
        self.include_background = include_background
        self.logits = logits

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_prediction(prediction)
        with float32_region(prediction):
            predicted, truth, true_positive = _weighted_overlap_sums(
                prediction, target, self.logits, self.include_background
            )
            false_positive = predicted - true_positive
            false_negative = truth - true_positive
            weights = class_weights_from_volume(truth, epsilon=self.weight_epsilon)
            numerator = (weights * true_positive).sum(1) + SMOOTH_NUMERATOR
            denominator = (
                weights * (true_positive + self.alpha * false_positive + self.beta * false_negative)
            ).sum(1) + SMOOTH_DENOMINATOR
            return (1.0 - numerator / denominator).mean()


VAEOutput = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]


@register_loss("vae")
class VAELoss(SegmentationLoss):
    """Myronenko's loss (seed 001): ``L_dice + 0.1 * L_L2 + 0.1 * L_KL``.

    ``forward(output, target, image=None)``:

    - ``output``: the model's training output, either the segmentation logits
      alone (then only the Dice term is computed, e.g. at validation) or
      ``(segmentation, reconstruction, mu, logvar)`` as a tuple/list or a dict
      with those keys. ``mu`` and ``logvar`` are ``(N, latent)``.
    - ``target``: float region masks of the segmentation's shape (WT/TC/ET channels).
    - ``image``: the network input that the VAE branch reconstructs; required
      when a reconstruction is given.

    Terms: ``L_dice`` = sigmoid soft Dice with ``sum p^2 + sum g^2`` in the
    denominator, the per-region losses added (the seed sums its three Dice losses);
    ``L_L2`` = mean squared reconstruction error (the seed writes ``||I - I_pred||^2``;
    a sum over ~1.6e7 elements would swamp the Dice, so the mean is used, as MONAI's
    SegResNetVAE does); ``L_KL = (1/V) sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``
    with V the number of image voxels (the seed's N), averaged over the batch.
    """

    output_activation = "sigmoid"

    def __init__(self, l2_weight: float = 0.1, kl_weight: float = 0.1, logits: bool = True) -> None:
        super().__init__()
        self.l2_weight = l2_weight
        self.kl_weight = kl_weight
        self.dice = SigmoidDiceLoss(logits=logits, squared_denominator=True, channel_reduction="sum")

    @staticmethod
    def _unpack(output: VAEOutput) -> tuple[torch.Tensor, ...]:
        if isinstance(output, torch.Tensor):
            return (output,)
        if isinstance(output, Mapping):
            keys = ("segmentation", "reconstruction", "mu", "logvar")
            missing = [key for key in keys if key not in output]
            if missing:
                raise ValueError(f"VAE output dict lacks {missing}; expected keys {keys}")
            return tuple(output[key] for key in keys)
        if len(output) not in (1, 4):
            raise ValueError("VAE output must be a tensor or (segmentation, reconstruction, mu, logvar)")
        return tuple(output)

    def forward(
        self, output: VAEOutput, target: torch.Tensor, image: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = self._unpack(output)
        segmentation = parts[0]
        loss = self.dice(segmentation, target)
        if len(parts) == 1:
            return loss
        reconstruction, mu, logvar = parts[1:]
        if image is None:
            raise ValueError("VAELoss needs the input image to score the reconstruction")
        if image.shape != reconstruction.shape:
            raise ValueError(
                f"reconstruction shape {tuple(reconstruction.shape)} != image shape {tuple(image.shape)}"
            )
        with float32_region(segmentation):
            l2 = F.mse_loss(reconstruction.float(), image.float())
            mu, logvar = mu.float().flatten(1), logvar.float().flatten(1)
            voxels = image[0, 0].numel()
            kl = (mu.square() + logvar.exp() - logvar - 1.0).sum(1) / voxels
            return loss + self.l2_weight * l2 + self.kl_weight * kl.mean()
