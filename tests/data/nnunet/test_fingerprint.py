"""The data set fingerprint on constructed cases whose statistics are known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

import data
from data.nnunet.fingerprint import evenly_spaced, plan_2d_size
from data.sources import extract_fingerprint
from tests.data.nnunet.writers import write_nnunet_v2


def known_cases():
    """Case a: 201 foreground voxels holding 0..200 in channel 0 (labels 1 and 2), background
    1000 (left out); channel 1 = 2 x channel 0. Case b: 99 foreground voxels of value 50."""
    first_label = np.zeros((2, 10, 20), np.uint8)
    first_label.ravel()[:201] = 1
    first_label.ravel()[150:201] = 2
    first = np.full((2, 10, 20), 1000.0, np.float32)
    first.ravel()[:201] = np.arange(201)[::-1]  # order does not matter to the statistics
    second_label = np.zeros((2, 10, 20), np.uint8)
    second_label.ravel()[-99:] = 1
    second = np.where(second_label > 0, 50.0, -7.0).astype(np.float32)
    return {"a": (np.stack([first, 2 * first]), first_label), "b": (np.stack([second, 2 * second]), second_label)}


@pytest.fixture
def root(tmp_path):
    cases = known_cases()
    write_nnunet_v2(tmp_path / "one", {"a": cases["a"]}, spacing_zyx=(3.0, 1.0, 1.0))
    write_nnunet_v2(tmp_path / "two", cases, spacing_zyx=(3.0, 1.0, 1.0))
    return tmp_path


def test_intensity_statistics_over_foreground_voxels(root):
    fingerprint = extract_fingerprint("nnunet", root / "one")
    ct = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    assert ct["samples"] == 201
    assert ct["mean"] == pytest.approx(100.0) and ct["median"] == pytest.approx(100.0)
    assert ct["std"] == pytest.approx(np.sqrt((201**2 - 1) / 12))  # population std of 0..200
    assert (ct["min"], ct["max"]) == (0.0, 200.0)
    # linear interpolation: 0.5% of the 200 steps is 1, 99.5% is 199
    assert ct["percentile_00_5"] == pytest.approx(1.0) and ct["percentile_99_5"] == pytest.approx(199.0)
    second = fingerprint["foreground_intensity_properties_per_channel"]["1"]
    assert second["mean"] == pytest.approx(200.0) and second["max"] == 400.0
    assert fingerprint["channels"] == ["CT", "T2"] and fingerprint["num_cases"] == 1
    json.dumps(fingerprint)  # JSON-serialisable as it is


def test_cases_pool_their_samples_and_class_frequencies(root):
    fingerprint = extract_fingerprint("nnunet", root / "two")
    ct = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    assert ct["samples"] == 300
    assert ct["mean"] == pytest.approx((201 * 100 + 99 * 50) / 300)
    assert ct["median"] == pytest.approx(50.5)  # sorted, the 150th value is 50 (the 100th fifty), the 151st 51
    assert fingerprint["class_frequencies"] == pytest.approx({"0": 500 / 800, "1": 249 / 800, "2": 51 / 800})
    assert fingerprint["cases"] == ["a", "b"]
    only_b = extract_fingerprint("nnunet", root / "two", ["b"])
    assert only_b["foreground_intensity_properties_per_channel"]["0"]["std"] == 0.0


def test_samples_at_most_the_limit_per_case_evenly_spaced(root):
    fingerprint = extract_fingerprint("nnunet", root / "one", samples_per_case=5)
    ct = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    # foreground values in array order are 200, 199, ... 0; picks 0, 50, 100, 150, 200 of them
    assert ct["samples"] == 5 and (ct["min"], ct["max"], ct["mean"]) == (0.0, 200.0, 100.0)
    assert evenly_spaced(np.arange(10), 4).tolist() == [0, 3, 6, 9]
    assert evenly_spaced(np.arange(3), 10).tolist() == [0, 1, 2]


def test_spacing_and_shape_distributions(tmp_path):
    cases = known_cases()
    write_nnunet_v2(tmp_path / "x", {"a": cases["a"]}, spacing_zyx=(3.0, 1.0, 1.0))
    write_nnunet_v2(tmp_path / "y", {"b": cases["b"]}, spacing_zyx=(5.0, 0.5, 2.0))
    # one data set of both: copy b's files beside a's
    for folder in ("imagesTr", "labelsTr"):
        for path in (tmp_path / "y" / folder).iterdir():
            path.rename(tmp_path / "x" / folder / path.name)
    fingerprint = extract_fingerprint("nnunet", tmp_path / "x")
    assert fingerprint["spacing"] == {"median": [4.0, 0.75, 1.5], "min": [3.0, 0.5, 1.0], "max": [5.0, 1.0, 2.0]}
    assert fingerprint["shape"]["median"] == [2.0, 10.0, 20.0]
    assert fingerprint["spacings"] == [[3.0, 1.0, 1.0], [5.0, 0.5, 2.0]]


def test_bad_cases_raise_or_are_skipped(root):
    (root / "two" / "labelsTr" / "b.nii.gz").unlink()
    with pytest.raises(data.DataError, match="missing label of case b"):
        extract_fingerprint("nnunet", root / "two")
    fingerprint = extract_fingerprint("nnunet", root / "two", skip_bad=True)
    assert fingerprint["cases"] == ["a"] and fingerprint["skipped"][0][0] == "b"
    with pytest.raises(data.DataError, match="case c .* is not in the data set"):
        extract_fingerprint("nnunet", root / "two", ["a", "c"])


@pytest.mark.parametrize("shapes, spacings, cap, size", [
    ([[8, 48, 48]], [[3, 1, 1]], 256, 64),  # log2 48 = 5.58 -> 64
    ([[8, 40, 40]], [[3, 1, 1]], 256, 32),  # log2 40 = 5.32 -> 32
    ([[24, 320, 320], [20, 256, 300]], [[3.6, 0.6, 0.6]] * 2, 256, 256),  # capped
    ([[24, 320, 320]], [[3.6, 0.6, 0.6]], 200, 128),  # the largest power of two not above the cap
    ([[30, 500, 30]], [[1, 4, 1]], 256, 32),  # the coarsest axis (1) is not in-plane
    ([[20, 30]], [[1, 1]], 256, 32),  # 2D images: both axes
    ([[4, 6]], [[1, 1]], 256, 16),  # never below 16
])
def test_plan_2d_size(shapes, spacings, cap, size):
    assert plan_2d_size({"shapes": shapes, "spacings": spacings}, cap=cap) == size
