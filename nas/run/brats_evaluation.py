"""Whole-volume segmentation and scoring of the 3D BraTS networks.

Training sees random crops; validation, the final test and ``retrain.py --predict`` see whole
volumes (not divisible by 16), segmented by Gaussian-weighted sliding windows the size of the
training crop, so the network always sees inputs of the size it was trained on. Outputs become
BraTS labels 0/1/2/4 (softmax: argmax; sigmoid: nested WT/TC/ET regions) and are scored per
region (WT = {1,2,4}, TC = {1,4}, ET = {4}).

Under DistributedDataParallel each rank segments every ``world_size``-th case and the rows are
gathered, so every rank returns the same numbers.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

import data
from nas.inference import output_activation, predict_probabilities
from nas.metrics import SegmentationMetric
from nas.train.checkpoints import unwrap_model
from nas.train.distributed import DistributedContext

#: Column prefix of the validation scores; ``val_dice_mean`` is what ``best.pt`` is chosen by.
VALIDATION_METRIC = "val_dice_mean"


def segment_volume(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int], *,
                   et_threshold: int | None = None, **options: Any) -> np.ndarray:
    """BraTS labels (uint8, 0/1/2/4) of one volume ``(C, *spatial)``.

    ``et_threshold``: seed 000's post-processing, enhancing tumour of fewer voxels becomes
    necrosis/core (label 1); None or 0 leaves the network's output as it is. ``options`` go to
    :func:`nas.inference.predict_probabilities`.
    """
    network = unwrap_model(network)
    probabilities = predict_probabilities(network, image, roi_size, **options)
    labels = data.brats_probabilities_to_labels(probabilities, output_activation(network))
    if et_threshold:
        labels = data.remove_small_enhancing_tumour(labels, et_threshold)
    return labels.cpu().numpy()


def item_labels(item: dict) -> np.ndarray:
    """Labels 0/1/2/4 ``(*spatial)`` of a ``data.get_dataset("brats", ...)`` item, whichever
    ``target`` the dataset serves."""
    label = item["label"].numpy() if isinstance(item["label"], torch.Tensor) else item["label"]
    if label.ndim == 4 and label.shape[0] == 3 and label.dtype.kind == "f":  # regions
        return data.brats_regions_to_labels(label)
    if label.ndim == 4:  # labels, (1, *spatial)
        label = label[0]
    if label.size and label.max() == 3:  # class indices
        return data.brats_index_to_labels(label)
    return label.astype(np.uint8)


def evaluate_volumes(network: nn.Module, dataset, roi_size: Sequence[int], *,
                     context: DistributedContext | None = None,
                     metrics: Sequence[str] = ("dice",), et_threshold: int | None = None,
                     **options: Any) -> list[dict[str, Any]]:
    """One row per case of ``dataset`` (whole volumes): ``{"case": id, "dice/WT": ..., ...}``
    for each of ``metrics`` (``nas.metrics.METRIC_NAMES``) and region, distances in mm.

    Every rank returns all rows, in the dataset's case order.
    """
    context = context or DistributedContext()
    device = options.pop("device", context.device)
    metric = SegmentationMetric(regions=data.BRATS_REGIONS, metrics=metrics)
    for index in range(context.rank, len(dataset), context.world_size):
        item = dataset[index]
        labels = segment_volume(network, item["image"], roi_size, et_threshold=et_threshold,
                                device=device, **options)
        metric.update(labels[None], item_labels(item)[None], spacing=item["meta"]["spacing"],
                      case_ids=[item["case"]])
    cases, _ = metric.aggregate()  # every rank's cases, on every rank
    order = {case: position for position, case in enumerate(dataset.cases)}
    rows = cases.to_dict("records") if len(cases) else []
    return sorted(rows, key=lambda row: order.get(row["case"], len(order)))


def region_means(rows: Sequence[dict[str, Any]], metric: str = "dice",
                 prefix: str = "val_") -> dict[str, float]:
    """``{prefix}{metric}_wt/_tc/_et`` (means over cases) and ``{prefix}{metric}_mean`` (their
    mean); NaN when there are no rows."""
    scores = {}
    for region in data.BRATS_REGIONS:
        values = [float(row[f"{metric}/{region}"]) for row in rows]
        scores[f"{prefix}{metric}_{region.lower()}"] = (float(np.mean(values)) if values
                                                        else float("nan"))
    scores[f"{prefix}{metric}_mean"] = float(np.mean(list(scores.values())))
    return scores


def make_validator(dataset, roi_size: Sequence[int], context: DistributedContext, *,
                   precision: torch.dtype | None = None, overlap: float = 0.5,
                   ) -> Callable[[nn.Module], dict[str, float]]:
    """The ``evaluate(model)`` of ``run_retrain``: whole-volume Dice of WT/TC/ET on
    ``dataset`` without post-processing (it scores the network, not the pipeline)."""
    if len(dataset) == 0:
        raise ValueError("the validation split has no cases; whole-volume validation needs "
                         "at least one (lower --val-fraction's rounding or add data)")

    def evaluate(model: nn.Module) -> dict[str, float]:
        started = time.perf_counter()
        rows = evaluate_volumes(model, dataset, roi_size, context=context, precision=precision,
                                overlap=overlap)
        return {**region_means(rows), "val_cases": len(rows),
                "val_seconds": time.perf_counter() - started}

    return evaluate
