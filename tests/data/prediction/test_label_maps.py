"""Label maps (data.prediction.label_maps): a network's probabilities become the data set's label
values by the map's decision, and region channels are painted back into labels by one rule."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import data
from data.brats import BRATS_REGION_ORDER, BRATS_REGIONS
from data.prediction.label_maps import paint_regions, region_label_map


def test_label_maps_turn_probabilities_into_label_values():
    binary = data.label_spec("dsb2018")
    p = np.array([[[0.2, 0.7], [0.5, 0.51]]])
    assert data.probabilities_to_labels(p, binary).tolist() == [[0, 1], [0, 1]]
    classes = data.label_spec("brats", target="index")  # softmax over 0, 1, 2, 4
    p = np.zeros((4, 1, 4))
    p[[0, 1, 2, 3], 0, [0, 1, 2, 3]] = 1
    assert data.probabilities_to_labels(p, classes).tolist() == [[0, 1, 2, 4]]
    regions = region_label_map(["background", "a", "b"], [0, 1, 2], {"ab": [1, 2], "b": [2]}, order=[1, 2])
    p = np.array([[[0.9, 0.9, 0.1]], [[0.1, 0.8, 0.9]]])  # the later region paints over the earlier
    assert data.probabilities_to_labels(p, regions).tolist() == [[1, 2, 2]]
    nested = data.label_spec("brats", target="regions")  # WT / TC / ET, BraTS' nesting
    p = np.array([[[0.9, 0.9, 0.9, 0.1]], [[0.1, 0.9, 0.9, 0.1]], [[0.1, 0.1, 0.9, 0.1]]])
    assert data.probabilities_to_labels(p, nested).tolist() == [[2, 1, 4, 0]]
    with pytest.raises(ValueError, match="2 probability channels; the label map's threshold decision needs 1"):
        data.probabilities_to_labels(np.zeros((2, 3)), binary)
    assert data.probability_names(classes) == classes["names"] and data.output_channels(nested) == 3


def test_brats_region_order_paints_each_region_with_the_label_no_later_region_holds():
    regions = list(BRATS_REGIONS.values())
    for index, members in enumerate(regions):
        later = {value for region in regions[index + 1:] for value in region}
        assert set(members) - later == {BRATS_REGION_ORDER[index]}


def test_every_region_painting_is_the_one_rule():
    """BraTS' nested regions (as arrays, as tensors, as a label map) and nnU-Net's regions_class_order
    give what `paint_regions` gives, at the default threshold and another."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((3, 4, 5, 6))
    nnunet = SimpleNamespace(regions_class_order=(1, 3, 2))
    for threshold in (0.5, 0.3):
        brats = paint_regions(probabilities, BRATS_REGION_ORDER, threshold)
        assert brats.dtype == np.uint8 and set(np.unique(brats)) <= {0, 1, 2, 4}
        np.testing.assert_array_equal(data.brats_regions_to_labels(probabilities, threshold), brats)
        as_tensor = data.brats_probabilities_to_labels(torch.from_numpy(probabilities), "sigmoid", threshold=threshold)
        assert as_tensor.dtype == torch.uint8
        np.testing.assert_array_equal(as_tensor.numpy(), brats)
        channels_last = data.brats_probabilities_to_labels(np.moveaxis(probabilities, 0, -1), "sigmoid", -1, threshold)
        np.testing.assert_array_equal(channels_last, brats)
        nested = dict(data.label_spec("brats", target="regions"), threshold=threshold)
        np.testing.assert_array_equal(data.probabilities_to_labels(probabilities, nested), brats)
        ordered = paint_regions(probabilities, nnunet.regions_class_order, threshold)
        np.testing.assert_array_equal(data.regions_to_labels(probabilities, nnunet, threshold), ordered)
        labels = region_label_map(["background", "a", "b", "c"], [0, 1, 2, 3], {"r1": [1, 2, 3], "r2": [3], "r3": [2]},
                                  order=nnunet.regions_class_order)
        np.testing.assert_array_equal(data.probabilities_to_labels(probabilities, dict(labels, threshold=threshold)),
                                      ordered)


def test_painting_needs_one_value_per_region():
    with pytest.raises(ValueError, match="3 region channels but 2 values"):
        paint_regions(np.zeros((3, 2, 2)), (1, 2))
