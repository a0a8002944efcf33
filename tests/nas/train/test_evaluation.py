"""Validation's reductions: regions' means over cases, then over regions; 2D items scored by
their data set's rule (sliced volumes per case, empty/empty left out; images per image)."""
import math

import pytest
import torch

from nas.metrics import overlap_summary
from nas.train import DistributedContext
from nas.train.evaluation import VAL_DICE_MEAN, evaluate_segmentation, region_means, segmentation_scores


def test_region_means_average_cases_then_regions():
    rows = [{"dice/WT": 1.0, "dice/TC": 0.5, "dice/ET": 0.0},
            {"dice/WT": 0.5, "dice/TC": 0.5, "dice/ET": 1.0}]
    assert region_means(rows, ("WT", "TC", "ET")) == {
        "val_dice_wt": 0.75, "val_dice_tc": 0.5, "val_dice_et": 0.5,
        VAL_DICE_MEAN: pytest.approx(1.75 / 3)}


class _SlicedVolumes(torch.utils.data.Dataset):
    """Two volumes of 6 slices each, served as 2D items with their case: class 1 (liver) in
    slices 2-3 of case a only, class 2 (tumour) nowhere; labels are class indices."""

    class_names = ("liver", "tumour")

    def __init__(self, planar=False):
        self.planar = planar  # True: the same items read as images, each a case of its own
        self.items = [(case, z) for case in ("a", "b") for z in range(6)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        case, z = self.items[index]
        label = torch.zeros(8, 8, dtype=torch.int64)
        if case == "a" and z in (2, 3):
            label[2:6, 2:6] = 1
        return {"image": torch.zeros(1, 8, 8), "label": label, "case": f"{case}{z}" if self.planar else case}


class _PredictsNothing(torch.nn.Module):
    """Background everywhere: the softmax's first channel wins."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 3, *x.shape[2:])
        logits[:, 0] = 5.0
        return logits


def test_sliced_volumes_score_per_case_so_predicting_nothing_scores_zero():
    loader = torch.utils.data.DataLoader(_SlicedVolumes(), batch_size=5)  # batches cross cases
    context = DistributedContext()
    loss = torch.nn.CrossEntropyLoss()
    scores, cases = segmentation_scores(_PredictsNothing(), loader, loss, context.device, context,
                                        class_names=_SlicedVolumes.class_names)
    cases = cases.set_index("case")
    # liver: truth in case a, nothing predicted: 0; case b and the tumour: empty in both, left out
    assert cases.loc["a", "dsc/liver"] == 0.0 and cases.loc["a", "iou/liver"] == 0.0
    assert math.isnan(cases.loc["b", "dsc/liver"]) and cases[["dsc/tumour", "iou/tumour"]].isna().all().all()
    assert scores["val_dsc_liver"] == 0.0 and math.isnan(scores["val_dsc_tumour"])
    assert scores["val_dsc"] == 0.0 and scores["val_miou"] == 0.0 and scores["val_cases"] == 2
    summary = overlap_summary(cases.reset_index(), _SlicedVolumes.class_names)
    assert summary["empty/liver"] == 1 and summary["empty/tumour"] == 2
    # the per-slice figure, named so, is the flattering one: 10 of 12 liver slices empty/empty
    assert scores["val_dsc_per_slice"] == pytest.approx((10 / 12 + 1.0) / 2)
    # evaluate_segmentation is the same numbers without the table
    assert evaluate_segmentation(_PredictsNothing(), loader, loss, context.device, context,
                                 class_names=_SlicedVolumes.class_names) == scores


def test_images_keep_seed_002s_rule_both_empty_scoring_one():
    loader = torch.utils.data.DataLoader(_SlicedVolumes(planar=True), batch_size=5)
    context = DistributedContext()
    scores = evaluate_segmentation(_PredictsNothing(), loader, torch.nn.CrossEntropyLoss(), context.device,
                                   context, class_names=_SlicedVolumes.class_names)
    assert scores["val_cases"] == 12 and "val_dsc_per_slice" not in scores
    assert scores["val_dsc_liver"] == pytest.approx(10 / 12) and scores["val_dsc_tumour"] == 1.0
