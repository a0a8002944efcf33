"""Evaluation during training, reduced across ranks: the 2D tasks' loss and overlap over a
loader, and the whole-volume validation of 3D runs.

Overlap follows the data set's rule (``nas.metrics.overlap_rule`` of its ``planar`` fact): a
volume, sliced for 2D training or whole, is scored per case and class with a class empty in
both prediction and truth left out (nnU-Net); an image that is a case of its own per image,
both empty scoring 1 (seed 002). The search's validation DSC, the retrain's checkpoint
selection and the test scores all take it from here.

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
import pandas as pd
import torch
from torch import nn

from nas.inference import output_activation, predict_probabilities
from nas.metrics import (
    PER_IMAGE,
    CaseOverlap,
    OverlapRule,
    SegmentationMetric,
    dice_per_case,
    iou_per_case,
    overlap_rule,
    overlap_summary,
)

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


def scoring_rule(dataset: Any, planar: bool) -> OverlapRule:
    """The overlap rule of ``dataset``'s cases (its ``planar`` fact, ``data.get_dataset``), or of
    ``planar`` for a data set without it (synthetic ones: 2D items images, 3D items volumes)."""
    return overlap_rule(bool(getattr(dataset, "planar", planar)))


@torch.no_grad()
def segmentation_scores(model: nn.Module, loader: Iterable, loss_fn: nn.Module,
                        device: torch.device, context: DistributedContext,
                        precision: torch.dtype | None = None,
                        class_names: Sequence[str] | None = None,
                        rule: OverlapRule | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """Mean loss, DSC and MIoU over the 2D items of ``loader`` (reduced across ranks), and the
    per-case table (``case``, ``dsc/<class>``, ``iou/<class>``; the same on every rank).

    ``rule`` (default: the loader's data set's, :func:`scoring_rule`) says how overlap is taken:
    :data:`~nas.metrics.PER_CASE` sums each class's counts over the slices of a case (the
    reassembled volume's Dice; items carry their ``case``) and leaves a class empty in both out
    of the mean; :data:`~nas.metrics.PER_IMAGE` scores each image, both empty scoring 1 (seed
    002). ``val_dsc`` and ``val_miou`` are the means over the classes of the class means (for
    one foreground class, its own scores); with several classes each also gets
    ``val_dsc_<name>`` and ``val_iou_<name>``. ``val_cases`` counts the cases. Under the
    per-case rule the per-slice scores (both empty = 1) stay as ``val_dsc_per_slice`` and
    ``val_miou_per_slice``, named so.
    """
    rule = rule or scoring_rule(getattr(loader, "dataset", None), planar=True)
    was_training = model.training
    model.eval()
    totals = None  # loss*n, items, then (per case only) per class: per-item dice sum, iou sum
    overlap, seen = None, 0
    try:
        for batch in loader:
            image, label = unpack_batch(batch, device)
            with autocast(device, precision):
                logits = model(image)
            logits = logits.float()
            loss = loss_fn(logits, label)
            predicted, truth = class_masks(logits, label)
            if overlap is None:
                overlap = CaseOverlap(_class_labels(class_names, predicted.shape[1]), rule.both_empty)
            overlap.add(_case_ids(batch, seen, image.shape[0], context), predicted, truth)
            seen += image.shape[0]
            parts = [torch.tensor([loss.double() * image.shape[0], float(image.shape[0])],
                                  dtype=torch.float64, device=device)]
            if rule != PER_IMAGE:  # the per-image scores are the cases' own under the per-image rule
                parts += [dice_per_case(predicted, truth).double().sum(0),
                          iou_per_case(predicted, truth).double().sum(0)]
            step = torch.cat(parts)
            totals = step if totals is None else totals + step
    finally:
        model.train(was_training)
    if totals is None:
        raise ValueError("the evaluation split is empty; it needs at least one image")
    totals = all_reduce_sum(totals, context)
    overlap.gather()  # a case's slices may lie on several ranks
    cases = overlap.scores()
    summary = overlap_summary(cases, overlap.class_names)
    items = max(totals[1].item(), 1.0)
    classes = len(overlap.class_names)
    result = {"val_loss": totals[0].item() / items, "val_dsc": summary["dsc"], "val_miou": summary["iou"]}
    if classes > 1:
        for name in overlap.class_names:
            result[f"val_dsc_{metric_key(name)}"] = summary[f"dsc/{name}"]
            result[f"val_iou_{metric_key(name)}"] = summary[f"iou/{name}"]
    result["val_cases"] = summary["cases"]
    if rule == PER_IMAGE:
        return result, cases
    result["val_dsc_per_slice"] = (totals[2:2 + classes] / items).mean().item()
    result["val_miou_per_slice"] = (totals[2 + classes:] / items).mean().item()
    return result, cases


def evaluate_segmentation(model: nn.Module, loader: Iterable, loss_fn: nn.Module,
                          device: torch.device, context: DistributedContext,
                          precision: torch.dtype | None = None,
                          class_names: Sequence[str] | None = None,
                          rule: OverlapRule | None = None) -> dict[str, float]:
    """The scores of :func:`segmentation_scores`, without the per-case table (what the search's
    and the retrain's validation log and select by)."""
    return segmentation_scores(model, loader, loss_fn, device, context, precision, class_names, rule)[0]


def _class_labels(class_names: Sequence[str] | None, classes: int) -> list[str]:
    """The names of the classes the masks hold (``class<k>`` where none or the wrong number is
    given)."""
    names = list(class_names or [])
    return names if len(names) == classes else [f"class{k + 1}" for k in range(classes)]


def _case_ids(batch: Any, seen: int, count: int, context: DistributedContext) -> list[str]:
    """The cases of a batch's items (``batch["case"]``); items without one are cases of their
    own, named by rank and position (``seen`` items before them on this rank)."""
    if isinstance(batch, dict) and "case" in batch:
        return [str(case) for case in batch["case"]]
    return [f"item{context.rank}-{seen + index}" for index in range(count)]


def _check_cases(dataset) -> None:
    if len(dataset) == 0:
        raise ValueError("the validation split has no cases; whole-volume validation needs "
                         "at least one (lower --val-fraction's rounding or add data)")


def volume_overlap(network: nn.Module, dataset, roi_size: Sequence[int], *, overlap: float,
                   context: DistributedContext | None = None, precision: torch.dtype | None = None,
                   class_names: Sequence[str] | None = None, rule: OverlapRule | None = None
                   ) -> CaseOverlap:
    """The per-case, per-class overlap counts of ``dataset``'s whole volumes (every rank's
    cases, on every rank), segmented by sliding windows of ``roi_size``; ``rule``: default the
    data set's (:func:`scoring_rule`, volumes: per case)."""
    context = context or DistributedContext()
    rule = rule or scoring_rule(dataset, planar=False)
    network = unwrap_model(network)
    sigmoid = output_activation(network) == "sigmoid"
    classes = int(network.num_classes) - (0 if sigmoid else 1)
    names = list(class_names if class_names is not None else getattr(dataset, "class_names", ()))
    counts = CaseOverlap(_class_labels(names, max(classes, 1)), rule.both_empty)
    for index in range(context.rank, len(dataset), context.world_size):
        item = dataset[index]
        probabilities = predict_probabilities(network, item["image"], roi_size, overlap=overlap,
                                              device=context.device, precision=precision)
        # class_masks reads logits: a sigmoid's probability 0.5 is its logit 0
        scores = (probabilities - 0.5 if sigmoid else probabilities)[None]
        predicted, truth = class_masks(scores, item["label"].to(context.device)[None])
        counts.add([str(item.get("case", f"case{index}"))], predicted, truth)
    counts.gather()
    return counts


def class_scorer(dataset, roi_size: Sequence[int], context: DistributedContext, *,
                 overlap: float, precision: torch.dtype | None = None,
                 class_names: Sequence[str] | None = None, rule: OverlapRule | None = None
                 ) -> Callable[[nn.Module], tuple[dict[str, float], pd.DataFrame]]:
    """``score(model)`` of a 3D run scored per class (:func:`volume_overlap`): the scores
    ``val_dice_<class>`` per class (``dataset.class_names``), ``val_dice_mean`` (their mean,
    classes no case scored left out), ``val_cases``, ``val_seconds``, and the per-case table
    (``case``, ``dsc/<class>``, ``iou/<class>``)."""
    _check_cases(dataset)

    def score(model: nn.Module) -> tuple[dict[str, float], pd.DataFrame]:
        started = time.perf_counter()
        counts = volume_overlap(model, dataset, roi_size, context=context, precision=precision,
                                overlap=overlap, class_names=class_names, rule=rule)
        table = counts.scores()
        summary = overlap_summary(table, counts.class_names)
        scores = {f"val_dice_{metric_key(name)}": summary[f"dsc/{name}"] for name in counts.class_names}
        return ({**scores, VAL_DICE_MEAN: summary["dsc"], "val_cases": summary["cases"],
                 "val_seconds": time.perf_counter() - started}, table)

    return score


def class_validator(dataset, roi_size: Sequence[int], context: DistributedContext, *,
                    overlap: float, precision: torch.dtype | None = None,
                    class_names: Sequence[str] | None = None, rule: OverlapRule | None = None
                    ) -> Callable[[nn.Module], dict[str, float]]:
    """The ``evaluate(model)`` of a 3D run scored per class: the scores of :func:`class_scorer`."""
    score = class_scorer(dataset, roi_size, context, overlap=overlap, precision=precision,
                         class_names=class_names, rule=rule)
    return lambda model: score(model)[0]


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
