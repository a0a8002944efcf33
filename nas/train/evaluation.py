"""Evaluation during training, reduced across ranks: the 2D tasks' loss and per-image overlap
over a loader, and the whole-volume validation of 3D runs.

Training sees random crops; whole-volume validation sees whole volumes, segmented by the
Gaussian-weighted sliding windows of the training crop (``nas.inference``), so the network
always sees inputs of the size it was trained on. A volume is scored either per class as the 2D
tasks are (the foreground classes of a softmax, or each sigmoid channel: a binary mask or a
region) or, where a data set scores label maps by regions (BraTS: WT/TC/ET of labels 0/1/2/4),
by the regions of the labels its caller's ``to_labels`` makes; the data set's facts are passed
in, this package knows none. Either way ``val_dice_mean``, the mean over classes or regions,
selects ``best.pt``. Under DistributedDataParallel each rank segments every ``world_size``-th
case and the results are reduced, so every rank returns the same numbers.
"""
from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nas.inference import output_activation, predict_probabilities
from nas.metrics import SegmentationMetric, dice_per_case, iou_per_case

from .checkpoints import unwrap_model
from .distributed import DistributedContext, all_reduce_sum
from .runtime import autocast, unpack_batch

#: The column a whole-volume validation selects ``best.pt`` by: the mean Dice over the classes
#: (or regions) it scores.
VAL_DICE_MEAN = "val_dice_mean"


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



def _check_cases(dataset) -> None:
    if len(dataset) == 0:
        raise ValueError("the validation split has no cases; whole-volume validation needs "
                         "at least one (lower --val-fraction's rounding or add data)")


def volume_dice(network: nn.Module, dataset, roi_size: Sequence[int], *, overlap: float,
                context: DistributedContext | None = None, precision: torch.dtype | None = None
                ) -> tuple[torch.Tensor, int]:
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


def class_validator(dataset, roi_size: Sequence[int], context: DistributedContext, *,
                    overlap: float, precision: torch.dtype | None = None,
                    class_names: Sequence[str] | None = None
                    ) -> Callable[[nn.Module], dict[str, float]]:
    """The ``evaluate(model)`` of a 3D run scored per class: ``val_dice_<class>`` per class
    (``dataset.class_names``), ``val_dice_mean``, ``val_cases``, ``val_seconds``."""
    _check_cases(dataset)
    names = list(class_names if class_names is not None else getattr(dataset, "class_names", ()))

    def evaluate(model: nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        sums, cases = volume_dice(model, dataset, roi_size, context=context,
                                  precision=precision, overlap=overlap)
        means = (sums / cases).tolist()
        labels = names if len(names) == len(means) else [f"class{k + 1}" for k in range(len(means))]
        scores = {f"val_dice_{metric_key(name)}": value for name, value in zip(labels, means)}
        return {**scores, VAL_DICE_MEAN: float(sum(means) / len(means)), "val_cases": cases,
                "val_seconds": time.perf_counter() - started}

    return evaluate


def volume_labels(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int],
                  to_labels: Callable[[torch.Tensor, str], torch.Tensor], **options: Any
                  ) -> np.ndarray:
    """The label map of one volume ``(C, *spatial)``: the network's probabilities
    (:func:`nas.inference.predict_probabilities` with ``options``) made labels by
    ``to_labels(probabilities, activation)``."""
    network = unwrap_model(network)
    probabilities = predict_probabilities(network, image, roi_size, **options)
    return to_labels(probabilities, output_activation(network)).cpu().numpy()


def region_rows(segment: Callable[[torch.Tensor], np.ndarray], dataset,
                truth: Callable[[dict], np.ndarray], regions: Mapping[str, Sequence[int]], *,
                context: DistributedContext | None = None, metrics: Sequence[str] = ("dice",)
                ) -> list[dict[str, Any]]:
    """One row per case of ``dataset`` (whole volumes): ``{"case": id, "dice/WT": ..., ...}``
    for each of ``metrics`` (``nas.metrics.METRIC_NAMES``) and region (the label values it
    joins), of ``segment(image)`` against ``truth(item)``, distances in mm. Every rank returns
    all rows, in the dataset's case order."""
    context = context or DistributedContext()
    metric = SegmentationMetric(regions=regions, metrics=metrics)
    for index in range(context.rank, len(dataset), context.world_size):
        item = dataset[index]
        metric.update(segment(item["image"])[None], truth(item)[None],
                      spacing=item["meta"]["spacing"], case_ids=[item["case"]])
    cases, _ = metric.aggregate()  # every rank's cases, on every rank
    order = {case: position for position, case in enumerate(dataset.cases)}
    rows = cases.to_dict("records") if len(cases) else []
    return sorted(rows, key=lambda row: order.get(row["case"], len(order)))


def region_means(rows: Sequence[dict[str, Any]], regions: Iterable[str], metric: str = "dice",
                 prefix: str = "val_") -> dict[str, float]:
    """``{prefix}{metric}_<region>`` (means over cases, region names lower case) and
    ``{prefix}{metric}_mean`` (their mean); NaN when there are no rows."""
    scores = {}
    for region in regions:
        values = [float(row[f"{metric}/{region}"]) for row in rows]
        scores[f"{prefix}{metric}_{region.lower()}"] = (float(np.mean(values)) if values
                                                        else float("nan"))
    scores[f"{prefix}{metric}_mean"] = float(np.mean(list(scores.values())))
    return scores


def region_validator(dataset, score: Callable[[nn.Module], Sequence[dict[str, Any]]],
                     regions: Iterable[str]) -> Callable[[nn.Module], dict[str, float]]:
    """The ``evaluate(model)`` of a 3D run scored by regions: the Dice of each region over the
    rows ``score(model)`` gives (:func:`region_rows`, segmented without post-processing: it
    scores the network, not the pipeline), ``val_dice_mean``, ``val_cases``, ``val_seconds``."""
    _check_cases(dataset)
    regions = list(regions)

    def evaluate(model: nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        rows = score(model)
        return {**region_means(rows, regions), "val_cases": len(rows),
                "val_seconds": time.perf_counter() - started}

    return evaluate
