"""A network's output as BraTS labels: argmax / nested regions, small-ET removal."""
import numpy as np
import pytest
import torch

import data


def test_softmax_probabilities_to_brats_labels():
    probabilities = torch.zeros(4, 2, 3)
    classes = torch.tensor([[0, 1, 2], [3, 2, 0]])
    probabilities.scatter_(0, classes.unsqueeze(0), 1.0)
    labels = data.brats_probabilities_to_labels(probabilities + 0.1)
    assert labels.dtype == torch.uint8
    assert labels.tolist() == [[0, 1, 2], [4, 2, 0]]
    batched = data.brats_probabilities_to_labels(probabilities[None].numpy(),
                                                      channel_dim=1, enhancing_label=3)
    assert isinstance(batched, np.ndarray) and batched.tolist() == [[[0, 1, 2], [3, 2, 0]]]
    with pytest.raises(ValueError, match="4 class"):
        data.brats_probabilities_to_labels(torch.zeros(3, 2, 2))


def test_sigmoid_regions_to_nested_brats_labels():
    # voxels: nothing, WT only, WT+TC, WT+TC+ET, ET alone, TC alone, WT at the threshold
    whole = [0.1, 0.9, 0.9, 0.9, 0.2, 0.3, 0.5]
    core = [0.1, 0.2, 0.8, 0.8, 0.1, 0.7, 0.1]
    enhancing = [0.2, 0.1, 0.3, 0.6, 0.9, 0.1, 0.1]
    probabilities = torch.tensor([whole, core, enhancing])
    labels = data.brats_probabilities_to_labels(probabilities, "sigmoid")
    assert labels.tolist() == [0, 2, 1, 4, 4, 1, 0]
    # regions read back from the labels are nested
    regions = {name: {i for i, label in enumerate(labels.tolist()) if label in members}
               for name, members in [("WT", {1, 2, 4}), ("TC", {1, 4}), ("ET", {4})]}
    assert regions["ET"] <= regions["TC"] <= regions["WT"]
    lower = data.brats_probabilities_to_labels(probabilities, "sigmoid", threshold=0.25)
    assert lower.tolist() == [0, 2, 4, 4, 4, 1, 2]
    with pytest.raises(ValueError, match="activation"):
        data.brats_probabilities_to_labels(probabilities, "relu")


def test_small_enhancing_tumour_becomes_core():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[:10] = 2
    labels[0, :5, :5] = 1
    flat = labels.reshape(-1)
    et_voxels = np.arange(1000, 1399)  # 399 ET voxels: below the threshold
    flat[et_voxels] = 4
    cleaned = data.remove_small_enhancing_tumour(labels)
    assert (cleaned == 4).sum() == 0 and (cleaned.reshape(-1)[et_voxels] == 1).all()
    untouched = flat != 4
    assert (cleaned.reshape(-1)[untouched] == flat[untouched]).all()
    assert (labels == 4).sum() == 399  # the input is not modified
    flat[1399] = 4  # 400 voxels: kept
    kept = data.remove_small_enhancing_tumour(torch.from_numpy(labels))
    assert isinstance(kept, torch.Tensor) and (kept == 4).sum() == 400
    custom = data.remove_small_enhancing_tumour(labels, min_voxels=401, replace_with=2,
                                                     enhancing_label=4)
    assert (custom.reshape(-1)[np.arange(1000, 1400)] == 2).all()
    empty = np.zeros((4, 4, 4), dtype=np.uint8)
    assert (data.remove_small_enhancing_tumour(empty) == empty).all()
