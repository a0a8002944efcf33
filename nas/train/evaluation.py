"""Evaluation of the 2D tasks during training: loss and per-image overlap over a loader, reduced
across ranks."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from nas.metrics import dice_per_case, iou_per_case

from .distributed import DistributedContext, all_reduce_sum
from .runtime import autocast, unpack_batch


def binary_prediction(logits: torch.Tensor) -> torch.Tensor:
    """Foreground mask of a sigmoid (1 channel) or softmax (C channels) output."""
    if logits.shape[1] == 1:
        return logits > 0
    return logits.argmax(dim=1, keepdim=True) > 0


@torch.no_grad()
def evaluate_binary(model: nn.Module, loader: Iterable, loss_fn: nn.Module,
                    device: torch.device, context: DistributedContext,
                    precision: torch.dtype | None = None) -> dict[str, float]:
    """Mean loss, DSC and MIoU over the images of ``loader`` (reduced across ranks).

    DSC and MIoU follow seed 002: per-image foreground Dice / IoU, averaged over the images
    (with one foreground class, an image's MIoU is its IoU); an image where prediction and
    truth are both empty scores 1.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, dice, iou, images
    try:
        for batch in loader:
            image, label = unpack_batch(batch, device)
            with autocast(device, precision):
                logits = model(image)
            logits = logits.float()
            loss = loss_fn(logits, label)
            prediction, truth = binary_prediction(logits), label > 0.5
            dice = dice_per_case(prediction, truth)[:, 0].double()
            iou = iou_per_case(prediction, truth)[:, 0].double()
            count = image.shape[0]
            totals += torch.stack([loss.double() * count, dice.sum(), iou.sum(),
                                   torch.tensor(float(count), dtype=torch.float64,
                                                device=device)])
    finally:
        model.train(was_training)
    totals = all_reduce_sum(totals, context)
    images = max(totals[3].item(), 1.0)
    return {"val_loss": totals[0].item() / images, "val_dsc": totals[1].item() / images,
            "val_miou": totals[2].item() / images}
