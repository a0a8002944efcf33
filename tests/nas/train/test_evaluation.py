"""Whole-volume validation's reductions: regions' means over cases, then over regions."""
import pytest

from nas.train.evaluation import VAL_DICE_MEAN, region_means


def test_region_means_average_cases_then_regions():
    rows = [{"dice/WT": 1.0, "dice/TC": 0.5, "dice/ET": 0.0},
            {"dice/WT": 0.5, "dice/TC": 0.5, "dice/ET": 1.0}]
    assert region_means(rows, ("WT", "TC", "ET")) == {
        "val_dice_wt": 0.75, "val_dice_tc": 0.5, "val_dice_et": 0.5,
        VAL_DICE_MEAN: pytest.approx(1.75 / 3)}
