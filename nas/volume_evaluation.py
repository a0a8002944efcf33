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

from .checkpoint import unwrap_model
from .distributed import DistributedContext, gather_objects
from .engine import autocast
from .inference import (brats_probabilities_to_labels, remove_small_enhancing_tumour,
                        sliding_window_inference)
from .metrics import BRATS_REGIONS, evaluate_case

#: Column prefix of the validation scores; ``val_dice_mean`` is what ``best.pt`` is chosen by.
VALIDATION_METRIC = "val_dice_mean"
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(dim=1),
    "sigmoid": torch.sigmoid,
}


def output_activation(network: nn.Module) -> str:
    """``"softmax"`` or ``"sigmoid"``: how the network's logits become probabilities."""
    activation = getattr(unwrap_model(network), "output_activation", None)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"{type(unwrap_model(network)).__name__} declares output_activation "
                         f"{activation!r}; expected one of {', '.join(_ACTIVATIONS)}")
    return activation


@torch.no_grad()
def predict_probabilities(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int], *,
                          overlap: float = 0.5, tta: bool = False, sw_batch_size: int = 1,
                          device: torch.device | str | None = None,
                          precision: torch.dtype | None = None) -> torch.Tensor:
    """Class (softmax) or region (sigmoid) probabilities ``(K, *spatial)`` of one volume
    ``(C, *spatial)``, on ``device``; the network is run in eval mode and restored.

    Probabilities, not logits, are averaged over windows and flips (``tta``: the 8 flips).
    """
    network = unwrap_model(network)
    activation = _ACTIVATIONS[output_activation(network)]
    device = torch.device(device) if device is not None else image.device
    was_training = network.training
    network.eval()

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            logits = network(batch)
        return activation(logits.float())

    try:
        volume = image.to(device, dtype=torch.float32)[None]
        return sliding_window_inference(volume, tuple(roi_size), predictor, overlap=overlap,
                                        sw_batch_size=sw_batch_size, mode="gaussian",
                                        device=device, tta_flips=tta)[0]
    finally:
        network.train(was_training)


def segment_volume(network: nn.Module, image: torch.Tensor, roi_size: Sequence[int], *,
                   et_threshold: int | None = None, **options: Any) -> np.ndarray:
    """BraTS labels (uint8, 0/1/2/4) of one volume ``(C, *spatial)``.

    ``et_threshold``: seed 000's post-processing, enhancing tumour of fewer voxels becomes
    necrosis/core (label 1); None or 0 leaves the network's output as it is. ``options`` go to
    :func:`predict_probabilities`.
    """
    probabilities = predict_probabilities(network, image, roi_size, **options)
    labels = brats_probabilities_to_labels(probabilities, output_activation(network))
    if et_threshold:
        labels = remove_small_enhancing_tumour(labels, et_threshold)
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
    rows = []
    for index in range(context.rank, len(dataset), context.world_size):
        item = dataset[index]
        labels = segment_volume(network, item["image"], roi_size, et_threshold=et_threshold,
                                device=device, **options)
        scores = evaluate_case(labels, item_labels(item), item["meta"]["spacing"],
                               regions=BRATS_REGIONS, metrics=metrics)
        rows.append({"case": item["case"], **scores})
    gathered = [row for part in gather_objects(rows, context) for row in part]
    order = {case: position for position, case in enumerate(dataset.cases)}
    return sorted(gathered, key=lambda row: order.get(row["case"], len(order)))


def region_means(rows: Sequence[dict[str, Any]], metric: str = "dice",
                 prefix: str = "val_") -> dict[str, float]:
    """``{prefix}{metric}_wt/_tc/_et`` (means over cases) and ``{prefix}{metric}_mean`` (their
    mean); NaN when there are no rows."""
    scores = {}
    for region in BRATS_REGIONS:
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
