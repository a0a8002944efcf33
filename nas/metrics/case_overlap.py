"""Overlap scores per case, summed over the slices or images of each case.

A volume cut into 2D slices for training (CHAOS, PROMISE12, an nnU-Net 3D data set searched in
2D) is scored as the volume: each class's true positives, false positives and false negatives are
summed over the case's slices before the Dice is taken, which is the Dice of the reassembled
volume without holding it. Most slices of a volume hold no organ or no tumour class, so scoring
them one by one with "both empty = 1" rewards a network that predicts nothing; nnU-Net leaves a
class out of a case's mean where prediction and truth are both empty (NaN), and so does this
class by default (``both_empty=nan``), reporting how many were left out beside the mean. (MONAI's
``DiceMetric(ignore_empty=True)`` leaves out every empty truth, also where the prediction is not
empty; nnU-Net's rule, used here, scores that case 0.)

Images that are cases of their own (DSB2018) keep seed 002's rule, ``both_empty=1.0``.

Counts are plain Python ints per case, so ranks that saw different slices of one case merge
exactly (:meth:`CaseOverlap.merge`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

__all__ = ["PER_CASE", "PER_IMAGE", "CaseOverlap", "OverlapRule", "overlap_rule", "overlap_summary"]

#: The per-case score columns, ``<metric>/<class name>``.
METRICS = ("dsc", "iou")


@dataclass(frozen=True)
class OverlapRule:
    """How a data set's overlap scores are taken: ``name`` (what a summary calls it),
    ``both_empty`` (a case's score for a class absent from prediction and truth, see
    :class:`CaseOverlap`) and ``definition`` (the sentence ``metrics.json`` states)."""

    name: str
    both_empty: float
    definition: str


#: Volumes, sliced for 2D training or whole: nnU-Net's rule.
PER_CASE = OverlapRule(
    "per case", math.nan,
    "Dice / IoU per case and class over the whole volume (2D slices summed back into their "
    "volume), averaged over the cases; a class empty in both prediction and truth is left out "
    "of its mean and counted (empty/<class>), as nnU-Net does")
#: 2D images that are cases of their own (DSB2018): seed 002's rule.
PER_IMAGE = OverlapRule(
    "per image", 1.0,
    "Dice / IoU per image and class, averaged over the images; an image where prediction and "
    "truth are both empty scores 1 (seed 002)")


def overlap_rule(planar: bool) -> OverlapRule:
    """The rule of a data set whose cases are 2D images (``planar``: :data:`PER_IMAGE`) or
    volumes (:data:`PER_CASE`), whatever the network sees of them."""
    return PER_IMAGE if planar else PER_CASE


class CaseOverlap:
    """Accumulates per-case, per-class confusion counts; ``scores()`` gives the per-case table and
    ``summary()`` the means.

    ``class_names``: the K foreground classes (or regions) of the masks passed to :meth:`add`.
    ``both_empty``: a case's score for a class absent from both prediction and truth: NaN (left
    out of the means, nnU-Net) or 1.0 (seed 002's per-image rule).
    """

    def __init__(self, class_names: Sequence[str], both_empty: float = math.nan) -> None:
        if not class_names:
            raise ValueError("class_names must name at least one class")
        self.class_names = tuple(class_names)
        self.both_empty = float(both_empty)
        self._counts: dict[str, np.ndarray] = {}  # case -> (K, 3) int64: tp, fp, fn

    def add(self, cases: Sequence[str], predicted: torch.Tensor | np.ndarray,
            truth: torch.Tensor | np.ndarray) -> None:
        """Count a batch: ``predicted`` and ``truth`` are boolean masks ``(N, K, *spatial)``,
        item n belonging to case ``cases[n]`` (several items may belong to one case)."""
        predicted, truth = _as_bool(predicted), _as_bool(truth)
        if predicted.shape != truth.shape or predicted.shape[1] != len(self.class_names):
            raise ValueError(f"masks must both be (N, {len(self.class_names)}, ...); got "
                             f"{tuple(predicted.shape)} and {tuple(truth.shape)}")
        if len(cases) != predicted.shape[0]:
            raise ValueError(f"{len(cases)} case ids for {predicted.shape[0]} items")
        dims = tuple(range(2, predicted.dim()))
        true_positive = (predicted & truth).sum(dims)
        false_positive = (predicted & ~truth).sum(dims)
        false_negative = (~predicted & truth).sum(dims)
        counts = torch.stack([true_positive, false_positive, false_negative], -1).cpu().numpy()
        for case, item in zip(cases, counts.astype(np.int64)):
            self._counts[case] = self._counts.get(case, 0) + item

    @property
    def counts(self) -> dict[str, np.ndarray]:
        """``case -> (K, 3)`` summed true positives, false positives, false negatives."""
        return dict(self._counts)

    def merge(self, counts: Mapping[str, np.ndarray]) -> None:
        """Add another accumulator's :attr:`counts` (another rank's share of the cases)."""
        for case, item in counts.items():
            self._counts[case] = self._counts.get(case, 0) + np.asarray(item, np.int64)

    def gather(self) -> None:
        """Merge every rank's counts into every rank's accumulator (no-op without a process
        group): the distributed sampler may give slices of one case to several ranks."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        shares: list = [None] * dist.get_world_size()
        dist.all_gather_object(shares, self._counts)
        self._counts = {}
        for share in shares:
            self.merge(share)

    def scores(self) -> pd.DataFrame:
        """One row per case (sorted by case id): ``case``, then ``dsc/<class>`` and
        ``iou/<class>`` for each class."""
        rows = []
        for case in sorted(self._counts):
            row: dict[str, object] = {"case": case}
            for name, (tp, fp, fn) in zip(self.class_names, self._counts[case]):
                union = tp + fp + fn
                row[f"dsc/{name}"] = 2 * tp / (2 * tp + fp + fn) if union else self.both_empty
                row[f"iou/{name}"] = tp / union if union else self.both_empty
            rows.append(row)
        columns = ["case"] + [f"{metric}/{name}" for metric in METRICS for name in self.class_names]
        return pd.DataFrame(rows, columns=columns)

    def summary(self) -> dict[str, float | int]:
        """:func:`overlap_summary` of :meth:`scores`."""
        return overlap_summary(self.scores(), self.class_names)


def overlap_summary(scores: pd.DataFrame, class_names: Iterable[str]) -> dict[str, float | int]:
    """Means over the cases of a per-case table as :meth:`CaseOverlap.scores` writes it.

    ``dsc/<class>`` and ``iou/<class>``: the class's mean over the cases where it is scored (NaN
    left out); ``empty/<class>``: how many cases left it out; ``dsc`` and ``iou``: the mean of the
    class means (the classes no case scored left out); ``cases``: the number of cases."""
    summary: dict[str, float | int] = {"cases": int(len(scores))}
    for metric in METRICS:
        means = []
        for name in class_names:
            column = scores[f"{metric}/{name}"].astype(float)
            mean = float(column.mean()) if column.notna().any() else math.nan
            summary[f"{metric}/{name}"] = mean
            if metric == METRICS[0]:
                summary[f"empty/{name}"] = int(column.isna().sum())
            if not math.isnan(mean):
                means.append(mean)
        summary[metric] = float(np.mean(means)) if means else math.nan
    return summary


def _as_bool(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    masks = torch.as_tensor(masks)
    return masks if masks.dtype == torch.bool else masks > 0.5
