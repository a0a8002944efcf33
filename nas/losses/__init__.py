"""Segmentation losses, selectable by name (``retrain.py --loss NAME``).

    loss = nas.losses.build("mixed_dice_jaccard")
    loss.set_epoch(epoch, total_epochs)       # every loss accepts it; most ignore it
    value = loss(logits, target)

Depends on torch only. Every loss is an `nn.Module` with
``forward(prediction, target)`` (``vae`` also takes ``image``) where
``prediction`` are raw logits ``(N, C, *spatial)``, 2D or 3D; ``logits=False``
passes probabilities instead. Reductions run in float32 with autocast off, and
no loss gives NaN/inf on empty classes.

| name | activation | target | background | source |
|---|---|---|---|---|
| ``dice`` | softmax | class indices / one-hot | excluded | Milletari; MONAI |
| ``dice_sigmoid`` | sigmoid per channel | float masks | n/a (regions) | |
| ``bce_dice`` | sigmoid | float masks | n/a | seed 002, 2D search |
| ``ce_dice`` | softmax | class indices / one-hot | CE all, Dice excluded | nnU-Net; multi-class 2D |
| ``mixed_dice_jaccard`` | softmax | class indices / one-hot | included | seed 000 (MFS-Net) |
| ``generalised_dice`` | softmax | class indices / one-hot | included | seed 003 (GDL_v) |
| ``weighted_ce`` | softmax | class indices / one-hot | weight 1 | seed 003 |
| ``sensitivity_specificity`` | softmax | class indices / one-hot | excluded | seed 003 |
| ``tversky_weighted`` | softmax | class indices / one-hot | included | seed 004 (MF-RES2Net) |
| ``vae`` | sigmoid per channel | float masks (+ image) | n/a | seed 001 (Myronenko) |
| ``ce`` | softmax | class indices / one-hot | included | |

Background rule: a loss includes class 0 exactly when its paper's formula sums
over all labels (the class-weighted ones, where 1/volume^2 weights make the
background's share negligible anyway); plain ``dice`` and
``sensitivity_specificity`` score the foreground only. Every loss with a
background choice takes ``include_background``. Softmax losses given a single
channel treat it as the foreground logit of a binary problem.

Smoothing: Dice-type ratios add 1e-5 to numerator and denominator (MONAI), so
an empty class predicted empty scores a perfect ratio of 1.
"""

from __future__ import annotations

from .core import LOSSES, SegmentationLoss, activation_of, build, list_losses, register_loss
from .overlap import (
    BCEDiceLoss,
    CEDiceLoss,
    DiceLoss,
    GeneralisedDiceLoss,
    MixedDiceJaccardLoss,
    SigmoidDiceLoss,
    VAELoss,
    WeightedTverskyLoss,
)
from .voxelwise import CrossEntropyLoss, SensitivitySpecificityLoss, WeightedCrossEntropyLoss

__all__ = [
    "LOSSES",
    "SegmentationLoss",
    "activation_of",
    "build",
    "list_losses",
    "register_loss",
    "BCEDiceLoss",
    "CEDiceLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "GeneralisedDiceLoss",
    "MixedDiceJaccardLoss",
    "SensitivitySpecificityLoss",
    "SigmoidDiceLoss",
    "VAELoss",
    "WeightedCrossEntropyLoss",
    "WeightedTverskyLoss",
]
