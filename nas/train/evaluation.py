"""Evaluation of the 2D tasks during training: loss and per-image overlap over a loader, reduced
across ranks, for a binary mask, softmax classes or sigmoid regions alike."""
from __future__ import annotations

import re
from typing import Iterable, Sequence

import torch
from torch import nn

from nas.metrics import dice_per_case, iou_per_case

from .distributed import DistributedContext, all_reduce_sum
from .runtime import autocast, unpack_batch


def class_masks(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true masks ``(N, K, *spatial)`` of the K classes the metrics report.

    Class-index labels ``(N, *spatial)`` go with a softmax: the argmax, one mask per class
    after the background. Float labels with the output's channels go with sigmoids: one mask
    per channel (a binary task, or overlapping regions), above 0 in logits.
    """
    if not label.is_floating_point():
        label = label[:, 0] if label.dim() == logits.dim() else label
        classes = torch.arange(1, logits.shape[1], device=logits.device)
        shape = (1, -1) + (1,) * (label.dim() - 1)
        predicted = logits.argmax(dim=1, keepdim=True) == classes.view(shape)
        return predicted, label.unsqueeze(1) == classes.view(shape)
    return logits > 0, (label > 0.5).reshape(logits.shape)


def metric_key(name: str) -> str:
    """A class name as a log column suffix: ``right kidney`` -> ``right_kidney``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "class"


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader: Iterable, loss_fn: nn.Module,
                          device: torch.device, context: DistributedContext,
                          precision: torch.dtype | None = None,
                          class_names: Sequence[str] | None = None) -> dict[str, float]:
    """Mean loss, DSC and MIoU over the images of ``loader`` (reduced across ranks).

    DSC and MIoU follow seed 002: per image, the Dice / IoU of each class (an image where
    prediction and truth are both empty scores 1), averaged over the images; ``val_dsc`` and
    ``val_miou`` are the means over the classes (for one foreground class, its own scores).
    With several classes, each also gets ``val_dsc_<name>`` and ``val_iou_<name>``.
    """
    was_training = model.training
    model.eval()
    totals = None  # loss*n, images, then per class: dice sum, iou sum
    try:
        for batch in loader:
            image, label = unpack_batch(batch, device)
            with autocast(device, precision):
                logits = model(image)
            logits = logits.float()
            loss = loss_fn(logits, label)
            predicted, truth = class_masks(logits, label)
            dice = dice_per_case(predicted, truth).double().sum(0)
            iou = iou_per_case(predicted, truth).double().sum(0)
            count = torch.tensor([loss.double() * image.shape[0], float(image.shape[0])],
                                 dtype=torch.float64, device=device)
            step = torch.cat([count, dice, iou])
            totals = step if totals is None else totals + step
    finally:
        model.train(was_training)
    if totals is None:
        raise ValueError("the evaluation split is empty; it needs at least one image")
    totals = all_reduce_sum(totals, context)
    images = max(totals[1].item(), 1.0)
    classes = (len(totals) - 2) // 2
    dice = totals[2:2 + classes] / images
    iou = totals[2 + classes:] / images
    result = {"val_loss": totals[0].item() / images, "val_dsc": dice.mean().item(),
              "val_miou": iou.mean().item()}
    if classes > 1:
        names = list(class_names or [])
        names = names if len(names) == classes else [f"class{k + 1}" for k in range(classes)]
        for name, class_dice, class_iou in zip(names, dice.tolist(), iou.tolist()):
            result[f"val_dsc_{metric_key(name)}"] = class_dice
            result[f"val_iou_{metric_key(name)}"] = class_iou
    return result

