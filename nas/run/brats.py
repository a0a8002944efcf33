"""The BraTS facts a 3D run and ``lwnas predict`` pass to the whole-volume evaluation of
``nas.train.evaluation``: outputs become BraTS labels 0/1/2/4 (softmax: argmax; sigmoid: nested
WT/TC/ET regions), optionally post-processed by seed 000's ET threshold, and are scored per
region (WT = {1,2,4}, TC = {1,4}, ET = {4}); any other data set of volumes is scored per class."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

import data
from nas.train.distributed import DistributedContext
from nas.train.evaluation import class_validator, region_rows, region_validator, volume_labels

#: The data set whose volumes are labels 0/1/2/4 scored by the regions WT/TC/ET.
BRATS = "brats"


def segment_volume(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int], *,
                   et_threshold: int | None = None, **options: Any) -> np.ndarray:
    """BraTS labels (uint8, 0/1/2/4) of one volume ``(C, *spatial)``.

    ``et_threshold``: seed 000's post-processing, enhancing tumour of fewer voxels becomes
    necrosis/core (label 1); None or 0 leaves the network's output as it is. ``options`` go to
    :func:`nas.inference.predict_probabilities`.
    """
    def to_labels(probabilities: torch.Tensor, activation: str) -> torch.Tensor:
        labels = data.brats_probabilities_to_labels(probabilities, activation)
        return data.remove_small_enhancing_tumour(labels, et_threshold) if et_threshold else labels

    return volume_labels(network, image, roi_size, to_labels, **options)


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
    """One row per BraTS case of ``dataset`` (whole volumes): ``{"case": id, "dice/WT": ...}``
    for each of ``metrics`` and region, distances in mm; every rank returns all rows, in the
    dataset's case order. ``options`` go to :func:`segment_volume`."""
    context = context or DistributedContext()
    device = options.pop("device", context.device)
    return region_rows(lambda image: segment_volume(network, image, roi_size, et_threshold=et_threshold,
                                                    device=device, **options),
                       dataset, item_labels, data.BRATS_REGIONS, context=context, metrics=metrics)


def volume_validator(dataset_name: str, dataset, roi_size: Sequence[int],
                     context: DistributedContext, *, overlap: float,
                     precision: torch.dtype | None = None) -> Callable[[nn.Module], dict[str, float]]:
    """The whole-volume validation of a 3D search or training run: BraTS's regions (WT/TC/ET of
    the labels 0/1/2/4, without post-processing) or the served classes of any other data set."""
    if dataset_name != BRATS:
        return class_validator(dataset, roi_size, context, precision=precision, overlap=overlap)

    def score(model: nn.Module) -> list[dict[str, Any]]:
        return evaluate_volumes(model, dataset, roi_size, context=context, precision=precision,
                                overlap=overlap)

    return region_validator(dataset, score, data.BRATS_REGIONS)


__all__ = ["BRATS", "evaluate_volumes", "item_labels", "segment_volume", "volume_validator"]
