"""Segmentation metrics: pure per-case functions, tables, a cumulative class.

Depends on nothing of the project (numpy, scipy, pandas, torch only), so it
can be used alone. MONAI's pattern: functions score one case (or, for
`dice_per_case`, a batch, unreduced); `SegmentationMetric` buffers cases across
batches and `aggregate()`s them, gathering across ranks under
``torch.distributed``.

Inputs are numpy arrays or tensors (any device) of one case. Binary masks may be
bool, 0/1 integers (any non-zero counts) or floats (``> 0.5`` counts).

Empty masks (the BraTS convention, one rule for every metric): when both the
prediction and the truth are empty the score is perfect (Dice, IoU,
sensitivity 1; HD, HD95, ASSD, RAVD 0); when exactly one is empty it is the
worst (Dice, IoU, sensitivity 0; distances ``empty_distance``, by default the
image diagonal in mm, 373.13 mm for BraTS). Specificity applies the rule to
the background. RAVD has no finite worst value: an empty truth with a
non-empty prediction gives NaN, counted apart in the summary's ``count``.

Distances are in millimetres from ``spacing`` (one value per array axis, 1 mm
by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .case_overlap import PER_CASE, PER_IMAGE, CaseOverlap, OverlapRule, overlap_rule, overlap_summary
from .cross_validation import case_dsc, cross_validation_table, fold_row, pooled_cases
from .paired import PairedComparison, compare_paired
from .surface_distance import (
    ArrayLike,
    as_mask,
    average_symmetric_surface_distance,
    hausdorff_distance,
    hd95,
    image_diagonal,
    surface_distance_scores,
    to_numpy,
)
from .tables import CumulativeMetric, case_table, summary_table, write_tables

__all__ = [
    "DEFAULT_METRICS",
    "METRIC_NAMES",
    "CaseOverlap",
    "OverlapRule",
    "PER_CASE",
    "PER_IMAGE",
    "ConfusionCounts",
    "CumulativeMetric",
    "SegmentationMetric",
    "average_symmetric_surface_distance",
    "case_dsc",
    "case_table",
    "cross_validation_table",
    "fold_row",
    "pooled_cases",
    "PairedComparison",
    "class_mean_iou",
    "compare_paired",
    "dice",
    "dice_per_case",
    "evaluate_case",
    "hausdorff_distance",
    "hd95",
    "image_diagonal",
    "iou",
    "iou_per_case",
    "jaccard",
    "miou",
    "overlap_rule",
    "overlap_summary",
    "relative_absolute_volume_difference",
    "sensitivity",
    "specificity",
    "summary_table",
    "write_tables",
]

@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of one binary case, and the overlap scores with the module's empty rule."""

    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int

    @classmethod
    def of(cls, pred: ArrayLike, truth: ArrayLike) -> ConfusionCounts:
        pred, truth = as_mask(pred), as_mask(truth)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction shape {pred.shape} != truth shape {truth.shape}")
        true_positive = int(np.count_nonzero(pred & truth))
        false_positive = int(np.count_nonzero(pred)) - true_positive
        false_negative = int(np.count_nonzero(truth)) - true_positive
        return cls(true_positive, false_positive, false_negative,
                   pred.size - true_positive - false_positive - false_negative)

    @property
    def dice(self) -> float:
        return _ratio(2 * self.true_positive, 2 * self.true_positive + self.false_positive + self.false_negative)

    @property
    def iou(self) -> float:
        return _ratio(self.true_positive, self.true_positive + self.false_positive + self.false_negative)

    @property
    def background_iou(self) -> float:
        return _ratio(self.true_negative, self.true_negative + self.false_positive + self.false_negative)

    @property
    def sensitivity(self) -> float:
        if self.true_positive + self.false_negative == 0:  # empty truth
            return 1.0 if self.false_positive == 0 else 0.0
        return self.true_positive / (self.true_positive + self.false_negative)

    @property
    def specificity(self) -> float:
        if self.true_negative + self.false_positive == 0:  # truth without background
            return 1.0 if self.false_negative == 0 else 0.0
        return self.true_negative / (self.true_negative + self.false_positive)

    def relative_absolute_volume_difference(self, empty_truth_value: float = float("nan")) -> float:
        predicted = self.true_positive + self.false_positive
        actual = self.true_positive + self.false_negative
        if actual == 0:
            return 0.0 if predicted == 0 else float(empty_truth_value)
        return abs(predicted - actual) / actual


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, with 0/0 = 1: both sets empty is a perfect score."""
    return 1.0 if denominator == 0 else numerator / denominator


def dice(pred: ArrayLike, truth: ArrayLike) -> float:
    """Dice ``2|P & T| / (|P| + |T|)``; both empty 1, exactly one empty 0."""
    return ConfusionCounts.of(pred, truth).dice


def iou(pred: ArrayLike, truth: ArrayLike) -> float:
    """IoU (Jaccard) ``|P & T| / |P | T|``; both empty 1, exactly one empty 0."""
    return ConfusionCounts.of(pred, truth).iou


jaccard = iou


def sensitivity(pred: ArrayLike, truth: ArrayLike) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)``; empty truth: 1 if the prediction is empty too, else 0."""
    return ConfusionCounts.of(pred, truth).sensitivity


def specificity(pred: ArrayLike, truth: ArrayLike) -> float:
    """Specificity ``TN / (TN + FP)``; truth without background: 1 if the prediction has none either, else 0."""
    return ConfusionCounts.of(pred, truth).specificity


def relative_absolute_volume_difference(
    pred: ArrayLike, truth: ArrayLike, empty_truth_value: float = float("nan")
) -> float:
    """RAVD ``| |P| - |T| | / |T|`` (0 is perfect); both empty 0; empty truth only: ``empty_truth_value`` (NaN)."""
    return ConfusionCounts.of(pred, truth).relative_absolute_volume_difference(empty_truth_value)


def _label_maps(pred: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Label maps of a pair: bool / float masks become labels 0 and 1, integers stay."""
    pred, truth = to_numpy(pred), to_numpy(truth)
    if pred.dtype == bool or np.issubdtype(pred.dtype, np.floating):
        pred = as_mask(pred).astype(np.int64)
    if truth.dtype == bool or np.issubdtype(truth.dtype, np.floating):
        truth = as_mask(truth).astype(np.int64)
    return pred, truth


def miou(pred: ArrayLike, truth: ArrayLike, num_classes: int = 2) -> float:
    """Seed 002's MIoU of one image: the mean over the foreground labels ``1..num_classes-1``
    of the per-label IoU (background excluded). For a binary mask it is the foreground IoU;
    averaged over the images of a split it is the number the seed reports. A label absent
    from both scores 1 (the empty rule)."""
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background too; need at least 2, got {num_classes}")
    pred, truth = _label_maps(pred, truth)
    return float(np.mean([iou(pred == label, truth == label) for label in range(1, num_classes)]))


def class_mean_iou(pred: ArrayLike, truth: ArrayLike, num_classes: int = 2) -> float:
    """Mean over labels ``0..num_classes-1`` of the per-label IoU, background included (the
    semantic-segmentation "mIoU" of Pascal VOC; not seed 002's `miou`). Binary masks are labels
    0 and 1, so the default is the mean of the background and foreground IoU."""
    pred, truth = _label_maps(pred, truth)
    return float(np.mean([iou(pred == label, truth == label) for label in range(num_classes)]))


def _bool_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The module's mask rule on tensors: floating point ``> 0.5``, others ``!= 0``."""
    return tensor > 0.5 if tensor.is_floating_point() else tensor != 0


def dice_per_case(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Dice per case and channel of binary ``(N, C, *spatial)`` tensors: ``(N, C)`` float32, unreduced.

    Vectorised on the tensors' device for validation during training. Pass
    one-hot masks (``F.one_hot(labels, C).movedim(-1, 1)``) or thresholded region
    channels. Both empty: 1; exactly one empty: 0 (the module's rule).
    """
    intersection, total = _overlap_counts(pred, truth)
    return torch.where(total > 0, 2.0 * intersection / total.clamp_min(1.0), torch.ones_like(total))


def _overlap_counts(pred: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|P & T| and |P| + |T| per case and channel (integer counts, exact in float32 below 2^24
    voxels per image)."""
    if pred.shape != truth.shape or pred.ndim < 3:
        raise ValueError(
            f"need two (N, C, *spatial) tensors of one shape, got {tuple(pred.shape)}, {tuple(truth.shape)}"
        )
    pred, truth = _bool_tensor(pred), _bool_tensor(truth)
    axes = tuple(range(2, pred.ndim))
    intersection = (pred & truth).sum(axes).float()
    total = pred.sum(axes).float() + truth.sum(axes).float()
    return intersection, total


def iou_per_case(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """IoU per case and channel of binary ``(N, C, *spatial)`` tensors: ``(N, C)`` float32,
    unreduced; both empty 1, exactly one empty 0 (the module's rule)."""
    intersection, total = _overlap_counts(pred, truth)
    union = total - intersection
    return torch.where(total > 0, intersection / union.clamp_min(1.0), torch.ones_like(total))


def _overlap_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    counts = ConfusionCounts.of(pred, truth)
    return {
        "dice": counts.dice,
        "iou": counts.iou,
        "sensitivity": counts.sensitivity,
        "specificity": counts.specificity,
        "ravd": counts.relative_absolute_volume_difference(),
        "class_mean_iou": (counts.iou + counts.background_iou) / 2,
    }


SURFACE_METRICS = ("hd", "hd95", "assd")
METRIC_NAMES = ("dice", "iou", "sensitivity", "specificity", "ravd", "class_mean_iou", *SURFACE_METRICS)
DEFAULT_METRICS = ("dice", "iou", "sensitivity", "specificity", "ravd", "assd", "hd", "hd95")


def _region_masks(
    labels: np.ndarray,
    regions: Mapping[str, Sequence[int]] | None,
    classes: Sequence[int] | None,
) -> dict[str, np.ndarray]:
    if regions is not None and classes is not None:
        raise ValueError("give regions or classes, not both")
    if classes is not None:
        return {str(label): labels == label for label in classes}
    if regions is not None:
        for name in regions:
            if "/" in name:
                raise ValueError(f"region names may not contain '/': {name!r}")
        return {name: np.isin(labels, tuple(members)) for name, members in regions.items()}
    return {"": as_mask(labels)}


def evaluate_case(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    classes: Sequence[int] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    empty_distance: float | None = None,
) -> dict[str, float]:
    """Score one case; returns ``{"<metric>/<region>": value}`` (just ``"<metric>"`` for a binary case).

    ``pred`` and ``truth`` are label maps of one shape. ``regions`` maps a name to
    the labels it unites (e.g. ``data.BRATS_REGIONS``); ``classes`` scores each listed
    label alone (named by its number); with neither, the case is binary (label
    > 0). ``metrics`` picks from `METRIC_NAMES`; ``class_mean_iou`` is the mean IoU
    of the region and its complement. Empty masks follow the module's rule; distances
    are in mm from ``spacing``.
    """
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid names: {', '.join(METRIC_NAMES)}")
    pred, truth = to_numpy(pred), to_numpy(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != truth shape {truth.shape}")
    pred_regions = _region_masks(pred, regions, classes)
    truth_regions = _region_masks(truth, regions, classes)
    scores: dict[str, float] = {}
    for region, pred_mask in pred_regions.items():
        values = _overlap_metrics(pred_mask, truth_regions[region])
        if any(name in SURFACE_METRICS for name in metrics):
            values.update(surface_distance_scores(pred_mask, truth_regions[region], spacing, empty_distance))
        for name in metrics:
            scores[f"{name}/{region}" if region else name] = values[name]
    # Metric-major column order: all regions' Dice, then all regions' IoU, ...
    order = {name: index for index, name in enumerate(metrics)}
    return dict(sorted(scores.items(), key=lambda item: order[item[0].split("/")[0]]))


def _cases(batch: ArrayLike, spatial_dims: int | None) -> np.ndarray:
    """A batch of label maps ``(N, *spatial)``, dropping a singleton channel axis.

    Without ``spatial_dims`` (and no spacing to tell it): 5-D and 4-D batches
    with a size-1 axis 1 are taken as ``(N, 1, *spatial)``; else ``(N, *spatial)``.
    """
    batch = to_numpy(batch)
    has_channel = batch.ndim == spatial_dims + 2 if spatial_dims else batch.ndim >= 4 and batch.shape[1] == 1
    if has_channel:
        if batch.shape[1] != 1:
            raise ValueError(
                f"expected label maps (N, 1, *spatial), got shape {batch.shape}; take the argmax first"
            )
        batch = batch[:, 0]
    return batch


class SegmentationMetric(CumulativeMetric):
    """`evaluate_case` over batches, buffered; `aggregate()` gives ``(cases, summary)`` DataFrames.

        metric = SegmentationMetric(regions=data.BRATS_REGIONS, metrics=("dice", "hd95"))
        for batch in loader:
            metric.update(labels_pred, labels_true, spacing=(1.0, 1.0, 1.0), case_ids=batch["id"])
        cases, summary = metric.aggregate()   # gathered across ranks under DDP
        metric.reset()

    Batches are label maps ``(N, *spatial)`` or ``(N, 1, *spatial)`` (numpy or
    tensors on any device): take the argmax / threshold first. ``spatial_dims``
    (2 or 3), or else the length of the spacing, tells a channel axis from a
    spatial one. ``spacing`` here is the default when `update` gets none.
    """

    def __init__(
        self,
        regions: Mapping[str, Sequence[int]] | None = None,
        classes: Sequence[int] | None = None,
        metrics: Sequence[str] = DEFAULT_METRICS,
        spacing: Sequence[float] | None = None,
        empty_distance: float | None = None,
        spatial_dims: int | None = None,
    ) -> None:
        super().__init__(spacing)
        if spatial_dims not in (None, 2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.regions, self.classes, self.metrics = regions, classes, tuple(metrics)
        self.empty_distance, self.spatial_dims = empty_distance, spatial_dims

    def compute_batch(
        self, pred_batch: ArrayLike, truth_batch: ArrayLike, spacings: list[Sequence[float] | None]
    ) -> list[dict[str, float]]:
        given = [len(spacing) for spacing in spacings if spacing is not None]
        spatial_dims = self.spatial_dims or (given[0] if given else None)
        preds, truths = _cases(pred_batch, spatial_dims), _cases(truth_batch, spatial_dims)
        if preds.shape != truths.shape:
            raise ValueError(f"prediction batch {preds.shape} != truth batch {truths.shape}")
        return [
            evaluate_case(pred, truth, spacing, self.regions, self.classes, self.metrics, self.empty_distance)
            for pred, truth, spacing in zip(preds, truths, spacings)
        ]
