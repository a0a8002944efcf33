"""Whole-volume validation of a 3D network on any data set served as volumes (nnU-Net v2 /
Decathlon data with ``spatial_dims=3``); BraTS has its own (``brats_evaluation``: labels
0/1/2/4 scored as the regions WT/TC/ET).

Each case is segmented by the Gaussian-weighted sliding windows of the training crop
(``nas.inference``), then scored per class as the 2D tasks are: per case the Dice of each
class the data serves (the foreground classes of a softmax, or each sigmoid channel: a binary
mask or a region), averaged over the cases; both masks empty score 1. Under
DistributedDataParallel each rank segments every ``world_size``-th case and the sums are
reduced, so every rank returns the same numbers.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from torch import nn

from nas.inference import output_activation, predict_probabilities
from nas.metrics import dice_per_case
from nas.train.checkpoints import unwrap_model
from nas.train.distributed import DistributedContext, all_reduce_sum
from nas.train.evaluation import class_masks, metric_key

from .brats_evaluation import make_validator

#: Column of the mean over classes (the BraTS validator's name for its regions' mean).
MEAN_METRIC = "val_dice_mean"


def volume_dice(network: nn.Module, dataset, roi_size: Sequence[int], *,
                context: DistributedContext | None = None, precision: torch.dtype | None = None,
                overlap: float = 0.5) -> tuple[torch.Tensor, int]:
    """Per class, the sum over ``dataset``'s whole volumes of their Dice (float64, on every
    rank), and the number of cases."""
    context = context or DistributedContext()
    network = unwrap_model(network)
    sigmoid = output_activation(network) == "sigmoid"
    totals = None
    for index in range(context.rank, len(dataset), context.world_size):
        item = dataset[index]
        probabilities = predict_probabilities(network, item["image"], roi_size, overlap=overlap,
                                              device=context.device, precision=precision)
        # class_masks reads logits: a sigmoid's probability 0.5 is its logit 0
        scores = (probabilities - 0.5 if sigmoid else probabilities)[None]
        predicted, truth = class_masks(scores, item["label"].to(context.device)[None])
        dice = dice_per_case(predicted, truth).double().sum(0)
        totals = dice if totals is None else totals + dice
    classes = int(network.num_classes) - (0 if sigmoid else 1)
    if totals is None:  # a rank without a case still joins the reduction
        totals = torch.zeros(max(classes, 1), dtype=torch.float64, device=context.device)
    return all_reduce_sum(totals, context), len(dataset)


def make_volume_validator(dataset, roi_size: Sequence[int], context: DistributedContext, *,
                          precision: torch.dtype | None = None, overlap: float = 0.5,
                          class_names: Sequence[str] | None = None
                          ) -> Callable[[nn.Module], dict[str, float]]:
    """The ``evaluate(model)`` of a 3D run on a data set of whole volumes: ``val_dice_<class>``
    per class (``dataset.class_names``), ``val_dice_mean``, ``val_cases``, ``val_seconds``."""
    if len(dataset) == 0:
        raise ValueError("the validation split has no cases; whole-volume validation needs "
                         "at least one (lower --val-fraction's rounding or add data)")
    names = list(class_names if class_names is not None else getattr(dataset, "class_names", ()))

    def evaluate(model: nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        sums, cases = volume_dice(model, dataset, roi_size, context=context,
                                  precision=precision, overlap=overlap)
        means = (sums / cases).tolist()
        labels = names if len(names) == len(means) else [f"class{k + 1}" for k in range(len(means))]
        scores = {f"val_dice_{metric_key(name)}": value for name, value in zip(labels, means)}
        return {**scores, MEAN_METRIC: float(sum(means) / len(means)), "val_cases": cases,
                "val_seconds": time.perf_counter() - started}

    return evaluate


def volume_validator(dataset_name: str, dataset, roi_size: Sequence[int],
                     context: DistributedContext, *, precision: torch.dtype | None = None,
                     overlap: float = 0.5) -> Callable[[nn.Module], dict[str, float]]:
    """The whole-volume validation of a 3D search or retrain: BraTS's regions (WT/TC/ET, from
    the labels 0/1/2/4, ``brats_evaluation``) or the served classes of any other data set."""
    if dataset_name == "brats":
        return make_validator(dataset, roi_size, context, precision=precision, overlap=overlap)
    return make_volume_validator(dataset, roi_size, context, precision=precision,
                                 overlap=overlap)


__all__ = ["MEAN_METRIC", "make_volume_validator", "volume_dice", "volume_validator"]
