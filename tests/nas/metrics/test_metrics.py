"""Metrics against hand-counted cases, surface distances in mm, empty conventions, tables, DDP."""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from data import BRATS_REGIONS
from nas import metrics

SPACING = (1.0, 0.5, 3.0)


def counted_pair() -> tuple[np.ndarray, np.ndarray]:
    """3 x 4 masks: truth 4 voxels, prediction 3, overlap 2 -> TP 2, FP 1, FN 2, TN 7."""
    truth = np.zeros((3, 4), dtype=bool)
    truth[0, :] = True
    pred = np.zeros((3, 4), dtype=bool)
    pred[0, :2] = True
    pred[1, 0] = True
    return pred, truth


def test_overlap_metrics_on_counted_voxels() -> None:
    pred, truth = counted_pair()
    assert metrics.dice(pred, truth) == pytest.approx(2 * 2 / (3 + 4))
    assert metrics.iou(pred, truth) == pytest.approx(2 / 5)
    assert metrics.jaccard(pred, truth) == pytest.approx(2 / 5)
    assert metrics.sensitivity(pred, truth) == pytest.approx(2 / 4)
    assert metrics.specificity(pred, truth) == pytest.approx(7 / 8)
    assert metrics.relative_absolute_volume_difference(pred, truth) == pytest.approx(1 / 4)


def test_inputs_may_be_tensors_ints_or_floats() -> None:
    pred, truth = counted_pair()
    assert metrics.dice(torch.from_numpy(pred), torch.from_numpy(truth)) == pytest.approx(4 / 7)
    assert metrics.dice(pred.astype(np.uint8) * 255, truth.astype(np.int64)) == pytest.approx(4 / 7)
    assert metrics.dice(pred * 0.9, truth.astype(np.float32)) == pytest.approx(4 / 7)


def test_2d_task_scores() -> None:
    # background: prediction 9 voxels, truth 8, overlap TN 7 -> IoU 7 / (9 + 8 - 7) = 0.7
    pred, truth = counted_pair()
    # seed 002's MIoU is the foreground IoU; the class mean with background has its own name
    assert metrics.dice(pred, truth) == pytest.approx(4 / 7)
    assert metrics.iou(pred, truth) == pytest.approx(0.4)
    assert metrics.class_mean_iou(pred, truth) == pytest.approx(0.55)
    assert metrics.miou(pred, truth) == pytest.approx(0.4)


def test_miou_over_three_labels() -> None:
    pred = np.array([0, 1, 1, 2, 2, 2])
    truth = np.array([0, 1, 2, 2, 2, 0])
    # label 0: 1/2 (pred {0}, truth {0, 5}); label 1: 1/2; label 2: 2/4
    assert metrics.class_mean_iou(pred, truth, num_classes=3) == pytest.approx(0.5)
    # a label absent from both scores 1
    assert metrics.class_mean_iou(pred, truth, num_classes=4) == pytest.approx((1.5 + 1.0) / 4)
    # seed 002's MIoU: the foreground labels only
    assert metrics.miou(pred, truth, num_classes=3) == pytest.approx(0.5)
    assert metrics.miou(pred, truth, num_classes=4) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    with pytest.raises(ValueError, match="background"):
        metrics.miou(pred, truth, num_classes=1)


def test_both_empty_is_perfect() -> None:
    empty = np.zeros((4, 5, 6), dtype=bool)
    assert metrics.dice(empty, empty) == 1.0
    assert metrics.iou(empty, empty) == 1.0
    assert metrics.sensitivity(empty, empty) == 1.0
    assert metrics.specificity(empty, empty) == 1.0
    assert metrics.relative_absolute_volume_difference(empty, empty) == 0.0
    assert metrics.hausdorff_distance(empty, empty, SPACING) == 0.0
    assert metrics.hd95(empty, empty, SPACING) == 0.0
    assert metrics.average_symmetric_surface_distance(empty, empty, SPACING) == 0.0


def test_one_empty_is_worst_with_image_diagonal_default() -> None:
    empty = np.zeros((4, 5, 6), dtype=bool)
    mask = empty.copy()
    mask[1, 1, 1] = True
    # diagonal: sqrt((4 * 1.0)^2 + (5 * 0.5)^2 + (6 * 3.0)^2) = sqrt(16 + 6.25 + 324)
    diagonal = math.sqrt(346.25)
    for pred, truth in ((empty, mask), (mask, empty)):
        assert metrics.dice(pred, truth) == 0.0
        assert metrics.iou(pred, truth) == 0.0
        assert metrics.sensitivity(pred, truth) == 0.0
        assert metrics.hausdorff_distance(pred, truth, SPACING) == pytest.approx(diagonal)
        assert metrics.hd95(pred, truth, SPACING) == pytest.approx(diagonal)
        assert metrics.average_symmetric_surface_distance(pred, truth, SPACING) == pytest.approx(diagonal)
        assert metrics.hd95(pred, truth, SPACING, empty_distance=373.13) == 373.13
    assert metrics.relative_absolute_volume_difference(empty, mask) == 1.0
    assert math.isnan(metrics.relative_absolute_volume_difference(mask, empty))
    # specificity applies the rule to the background: a truth with no background
    full = np.ones((2, 2), dtype=bool)
    assert metrics.specificity(full, full) == 1.0
    assert metrics.specificity(np.eye(2, dtype=bool), full) == 0.0


def test_brats_diagonal_is_373_13_mm() -> None:
    assert metrics.image_diagonal((240, 240, 155), (1.0, 1.0, 1.0)) == pytest.approx(373.13, abs=5e-3)


def cube(shape: tuple[int, ...] = (12, 12, 12), start: int = 2, side: int = 4) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[start:start + side, start:start + side, start:start + side] = True
    return mask


@pytest.mark.parametrize("axis, shift", [(0, 3), (1, 2), (2, 1), (2, 4)])
def test_shifted_cube_hausdorff_is_shift_times_spacing(axis: int, shift: int) -> None:
    # Every surface voxel is within shift voxels along `axis` of the other cube's
    # surface, and the face leading the shift is exactly that far away.
    reference = cube()
    shifted = np.roll(reference, shift, axis=axis)
    expected = shift * SPACING[axis]
    assert metrics.hausdorff_distance(reference, shifted, SPACING) == pytest.approx(expected)
    assert metrics.hausdorff_distance(shifted, reference, SPACING) == pytest.approx(expected)
    assert metrics.hd95(reference, shifted, SPACING) <= expected + 1e-12


def test_shifted_cube_assd_by_hand() -> None:
    # A 4^3 cube and its copy shifted one voxel along axis 1 (0.5 mm, the finest axis).
    # Surface = the cube minus its 2^3 interior: 64 - 8 = 56 voxels per cube.
    # From the reference: its first face along axis 1 (16 voxels) lies 0.5 mm
    # before the shifted cube's first face; its last face's 2x2 interior (4 voxels)
    # sits inside the shifted cube, 0.5 mm from that cube's last face (the side
    # faces are >= 1 mm away in-plane); all other 36 voxels lie on the shifted surface.
    # Symmetric the other way, so ASSD = 2 * 0.5 * (16 + 4) / (2 * 56) = 5/28 mm.
    reference = cube()
    shifted = np.roll(reference, 1, axis=1)
    assert metrics.average_symmetric_surface_distance(reference, shifted, SPACING) == pytest.approx(5 / 28)
    # 20 of 56 distances per direction are 0.5 mm, so the 95th percentile is 0.5 mm
    assert metrics.hd95(reference, shifted, SPACING) == pytest.approx(0.5)


def test_hd95_ignores_a_single_outlier_that_hausdorff_sees() -> None:
    # truth: the cube at 2..5; prediction adds one voxel at x = 10, 5 mm from x = 5.
    # Prediction surface: 56 voxels at 0 mm + 1 at 5 mm; 95th percentile of 57 values
    # interpolates between sorted values 53 and 54, both 0. ASSD = 5 / (57 + 56).
    truth = cube()
    pred = truth.copy()
    pred[10, 3, 3] = True
    assert metrics.hausdorff_distance(pred, truth) == pytest.approx(5.0)
    assert metrics.hd95(pred, truth) == pytest.approx(0.0)
    assert metrics.hausdorff_distance(pred, truth, percentile=95) == metrics.hd95(pred, truth)
    assert metrics.average_symmetric_surface_distance(pred, truth) == pytest.approx(5 / 113)


def test_spacing_must_match_dimensions() -> None:
    with pytest.raises(ValueError, match="spacing"):
        metrics.hd95(cube(), cube(), (1.0, 1.0))


def toy_brats_case() -> tuple[np.ndarray, np.ndarray]:
    truth = np.array([0, 1, 2, 4, 4, 2]).reshape(1, 1, 6)
    pred = np.array([0, 1, 2, 2, 4, 0]).reshape(1, 1, 6)
    return pred, truth


def test_evaluate_case_with_brats_regions() -> None:
    # WT: truth 5 voxels, pred 4, overlap 4 -> 8/9; TC: truth {1,3,4}, pred {1,4} -> 4/5;
    # ET: truth {3,4}, pred {4} -> 2/3
    pred, truth = toy_brats_case()
    scores = metrics.evaluate_case(pred, truth, regions=BRATS_REGIONS, metrics=("dice", "hd"))
    assert list(scores) == ["dice/WT", "dice/TC", "dice/ET", "hd/WT", "hd/TC", "hd/ET"]
    assert scores["dice/WT"] == pytest.approx(8 / 9)
    assert scores["dice/TC"] == pytest.approx(4 / 5)
    assert scores["dice/ET"] == pytest.approx(2 / 3)
    per_class = metrics.evaluate_case(pred, truth, classes=[1, 2], metrics=("dice",))
    assert per_class == pytest.approx({"dice/1": 1.0, "dice/2": 2 * 1 / (2 + 2)})
    binary = metrics.evaluate_case(pred, truth, metrics=("dice", "class_mean_iou"))
    assert binary["dice"] == pytest.approx(8 / 9)
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.evaluate_case(pred, truth, metrics=("dsc",))
    with pytest.raises(ValueError, match="not both"):
        metrics.evaluate_case(pred, truth, regions=BRATS_REGIONS, classes=[1])


def test_dice_per_case_batched() -> None:
    pred = torch.zeros(2, 2, 4, dtype=torch.bool)
    truth = torch.zeros(2, 2, 4, dtype=torch.bool)
    pred[0, 0, :3], truth[0, 0, 1:] = True, True  # overlap 2: 4 / 6
    truth[0, 1, 0] = True  # prediction empty: 0
    pred[1, 0, :] = truth[1, 0, :] = True  # identical: 1; channel 1 of case 1 both empty: 1
    expected = torch.tensor([[4 / 6, 0.0], [1.0, 1.0]])
    assert torch.allclose(metrics.dice_per_case(pred, truth), expected)
    assert torch.allclose(metrics.dice_per_case(pred.float(), truth.long()), expected)


def test_tables_and_summary_statistics(tmp_path: Path) -> None:
    rows = [
        {"case": "a", "dice/WT": 1.0, "ravd/WT": 0.0},
        {"case": "b", "dice/WT": 0.5, "ravd/WT": float("nan")},
        {"case": "c", "dice/WT": 0.0, "ravd/WT": 1.0},
    ]
    cases = metrics.case_table(rows)
    assert list(cases.columns) == ["case", "dice/WT", "ravd/WT"]
    summary = metrics.summary_table(cases)
    assert list(summary.columns) == ["metric", "region", "mean", "std", "median", "count"]
    dice_row = summary[summary.metric == "dice"].iloc[0]
    # values 1, 0.5, 0: mean 0.5, sample std sqrt((0.25 + 0 + 0.25) / 2) = 0.5, median 0.5
    assert (dice_row.region, dice_row["mean"], dice_row["std"], dice_row["median"], dice_row["count"]) == (
        "WT", 0.5, 0.5, 0.5, 3,
    )
    ravd_row = summary[summary.metric == "ravd"].iloc[0]
    assert (ravd_row["mean"], ravd_row["count"]) == (0.5, 2)  # NaN left out, visible in the count
    cases_path, summary_path = metrics.write_tables(cases, tmp_path / "out", "val")
    assert cases_path.name == "val_cases.csv" and summary_path.name == "val_summary.csv"
    assert list(pd.read_csv(cases_path).columns) == ["case", "dice/WT", "ravd/WT"]
    assert pd.read_csv(summary_path)["mean"].tolist() == [0.5, 0.5]


def test_segmentation_metric_accumulates_and_resets() -> None:
    pred, truth = toy_brats_case()
    metric = metrics.SegmentationMetric(regions=BRATS_REGIONS, metrics=("dice", "hd"))
    # a tensor batch with a channel axis and a per-case spacing
    metric.update(torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None], case_ids=["x"])
    metric.update(
        np.stack([truth, truth]), np.stack([truth, truth]),
        spacing=[(1.0, 1.0, 1.0), (1.0, 1.0, 2.0)], case_ids=["y", "x"],  # "x" again: padded duplicate
    )
    cases, summary = metric.aggregate()
    assert cases["case"].tolist() == ["x", "y"]
    assert cases["dice/ET"].tolist() == pytest.approx([2 / 3, 1.0])
    # WT of case x: truth voxel 5 has no prediction; nearest prediction surface voxel 1 away
    assert cases["hd/WT"].tolist() == pytest.approx([1.0, 0.0])
    assert summary.set_index(["metric", "region"]).loc[("dice", "ET"), "mean"] == pytest.approx((2 / 3 + 1) / 2)
    metric.reset()
    assert len(metric.aggregate()[0]) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ddp_worker(rank: int, port: int, results: multiprocessing.Queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        metric = metrics.SegmentationMetric(metrics=("dice",))
        pred = np.zeros((1, 4, 4), dtype=np.int64)
        pred[0, :rank + 1] = 1  # rank 0 predicts 4 voxels, rank 1 eight
        truth = np.zeros((1, 4, 4), dtype=np.int64)
        truth[0, :2] = 1
        metric.update(pred, truth, case_ids=[f"case{rank}"])
        cases, _ = metric.aggregate()
        results.put((rank, cases["case"].tolist(), cases["dice"].tolist()))
    finally:
        dist.destroy_process_group()


def test_aggregate_gathers_across_ranks_with_gloo() -> None:
    context = multiprocessing.get_context("fork")  # as torch's own gloo tests; no re-import
    results = context.Queue()
    port = _free_port()
    workers = [context.Process(target=_ddp_worker, args=(rank, port, results)) for rank in range(2)]
    for worker in workers:
        worker.start()
    gathered = sorted(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    # dice: rank 0 2*4/(4+8) = 2/3, rank 1 2*8/(8+8) = 1; every rank sees both, in rank order
    for _, case_ids, dice in gathered:
        assert case_ids == ["case0", "case1"]
        assert dice == pytest.approx([2 / 3, 1.0])
