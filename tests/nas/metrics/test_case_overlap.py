"""Per-case overlap summed over slices: the volume's Dice, empty/empty left out (nnU-Net)."""
import math

import numpy as np
import pytest
import torch

from nas.metrics import dice
from nas.metrics.case_overlap import CaseOverlap


def _volumes(seed=0):
    generator = np.random.default_rng(seed)
    truth = np.zeros((2, 10, 16, 16), bool)  # two cases of 10 slices, one class
    truth[0, 3:6, 4:10, 4:10] = True
    truth[1, 5:8, 2:9, 6:12] = True
    predicted = truth ^ (generator.random(truth.shape) < 0.05)
    return predicted, truth


def test_slices_summed_per_case_give_the_volume_dice_in_any_batching():
    predicted, truth = _volumes()
    overlap = CaseOverlap(["organ"])
    slices = [(case, z) for case in range(2) for z in range(10)]
    order = np.random.default_rng(1).permutation(len(slices))
    for batch in np.array_split(order, 7):  # shuffled slices, odd batches
        cases = [f"case{slices[i][0]}" for i in batch]
        overlap.add(cases, torch.from_numpy(np.stack([predicted[slices[i]] for i in batch]))[:, None],
                    torch.from_numpy(np.stack([truth[slices[i]] for i in batch]))[:, None])
    scores = overlap.scores()
    assert list(scores["case"]) == ["case0", "case1"]
    for case in range(2):
        assert scores["dsc/organ"][case] == pytest.approx(dice(predicted[case], truth[case]))
    summary = overlap.summary()
    assert summary["dsc"] == pytest.approx(np.mean([dice(predicted[c], truth[c]) for c in range(2)]))
    assert summary["cases"] == 2 and summary["empty/organ"] == 0


def test_a_class_empty_in_both_is_left_out_and_counted():
    truth = torch.zeros(3, 2, 4, 4, dtype=torch.bool)
    truth[0, 0, :2] = True  # case a holds class one only; b holds nothing; c both classes
    truth[2, :, 1:3, 1:3] = True
    predicted = truth.clone()
    predicted[2, 1] = False  # c's second class missed entirely
    overlap = CaseOverlap(["one", "two"])
    overlap.add(["a", "b", "c"], predicted, truth)
    scores = overlap.scores().set_index("case")
    assert scores.loc["a", "dsc/one"] == 1.0 and math.isnan(scores.loc["a", "dsc/two"])
    assert scores.loc["b"].isna().all()
    assert scores.loc["c", "dsc/two"] == 0.0 and scores.loc["c", "iou/two"] == 0.0
    summary = overlap.summary()
    assert (summary["dsc/one"], summary["dsc/two"]) == (1.0, 0.0)
    assert (summary["empty/one"], summary["empty/two"]) == (1, 2)
    assert summary["dsc"] == 0.5
    # seed 002's per-image rule: both empty scores 1, nothing left out
    per_image = CaseOverlap(["one", "two"], both_empty=1.0)
    per_image.add(["a", "b", "c"], predicted, truth)
    assert per_image.summary()["dsc/two"] == pytest.approx(2 / 3)


def test_predicting_nothing_scores_zero_where_the_truth_has_the_class():
    """The per-slice "both empty = 1" rule gave a network that predicts nothing a high score on
    volumes whose slices are mostly empty; per case it scores 0."""
    _, truth = _volumes()
    overlap = CaseOverlap(["organ"])
    for case in range(2):
        overlap.add([f"case{case}"] * 10, torch.zeros(10, 1, 16, 16, dtype=torch.bool),
                    torch.from_numpy(truth[case])[:, None])
    assert overlap.summary()["dsc"] == 0.0


def test_counts_of_ranks_merge_exactly():
    predicted, truth = _volumes(3)
    whole, first, second = CaseOverlap(["organ"]), CaseOverlap(["organ"]), CaseOverlap(["organ"])
    for z in range(10):
        item = (torch.from_numpy(predicted[:, z])[:, None], torch.from_numpy(truth[:, z])[:, None])
        whole.add(["x", "y"], *item)
        (first if z % 2 else second).add(["x", "y"], *item)
    first.merge(second.counts)
    assert first.scores().equals(whole.scores())
    with pytest.raises(ValueError, match="case ids"):
        whole.add(["x"], *item)
