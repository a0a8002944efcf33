"""Splits: by patient/case, SPEC ratios, seeded, saved and reloaded as splits.json."""

from __future__ import annotations

import json

import pytest

import data
from data.sample.chaos import write_chaos


def test_ratios_follow_spec_and_partition_the_cases():
    cases = [f"case{i:02d}" for i in range(50)]
    for name, test_share in (("dsb2018", 15), ("chaos", 25), ("promise12", 20), ("brats", 10)):
        splits = data.make_splits(cases, data.get_preset(name).test_fraction, 0.25, seed=1, dataset=name)
        assert len(splits["test"]) == test_share
        assert len(splits["val"]) == round(0.25 * (50 - test_share))
        assert sorted(splits["train"] + splits["val"] + splits["test"]) == cases
        assert not set(splits["train"]) & set(splits["val"])


def test_seeded_and_independent_of_input_order():
    cases = [str(i) for i in range(20)]
    first = data.make_splits(cases, 0.5, seed=3)
    assert data.make_splits(list(reversed(cases)), 0.5, seed=3) == first
    assert data.make_splits(cases, 0.5, seed=4)["test"] != first["test"]


def test_small_sets_keep_every_split_non_empty():
    splits = data.make_splits(["a", "b", "c", "d"], 0.5, 0.25)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [1, 1, 2]


@pytest.fixture
def chaos_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path / "cache"))
    return write_chaos(tmp_path / "chaos", ct_patients=("1", "2", "5", "6", "8", "10"), mr_patients=(),
                       slices=4, ct_size=32)


def test_slices_of_a_patient_never_cross_splits(chaos_root):
    datasets = {split: data.get_dataset("chaos", chaos_root, split, image_size=16)
                for split in ("train", "val", "test")}
    patients = {split: {ds.case_of(i) for i in range(len(ds))} for split, ds in datasets.items()}
    assert patients["train"] and patients["val"] and patients["test"]
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(ds) for ds in datasets.values()) == 6 * 4  # every slice of every patient, once
    assert len(patients["test"]) == 3  # CHAOS 1:1


def test_round_trip_through_splits_json(chaos_root, tmp_path):
    train = data.get_dataset("chaos", chaos_root, "train", seed=7, image_size=16)
    path = data.save_splits(tmp_path / "run" / "splits.json", train.splits)
    saved = json.loads(path.read_text())
    assert saved["dataset"] == "chaos" and saved["seed"] == 7 and saved["test_fraction"] == 0.5
    assert data.load_splits(path) == train.splits
    # Another seed would cut differently; the file wins.
    again = data.get_dataset("chaos", chaos_root, "test", seed=99, splits_file=path, image_size=16)
    assert again.cases == train.splits["test"]


def test_splits_file_naming_a_missing_case(chaos_root, tmp_path):
    splits = data.make_splits(["1", "2", "3"], 0.5, dataset="chaos")
    path = data.save_splits(tmp_path / "splits.json", splits)
    with pytest.raises(data.DataError, match=r"splits.json: case 3 .* is not under"):
        data.get_dataset("chaos", chaos_root, "train", splits_file=path, image_size=16)


def test_malformed_splits_file(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text('{"train": ["a"], "val": ["a"], "test": []}')
    with pytest.raises(data.DataError, match="case a is in both train and val"):
        data.load_splits(path)
    path.write_text("{not json")
    with pytest.raises(data.DataError, match="not valid JSON"):
        data.load_splits(path)


def test_folds_partition_the_cases_outside_val_and_are_seeded():
    cases = [f"case{i:02d}" for i in range(23)]
    splits = data.make_splits(cases, 0.2, 0.25, seed=0)
    folded = data.with_folds(splits, 5, seed=1)
    tests = [fold["test"] for fold in folded["folds"]]
    tested = [case for fold in tests for case in fold]
    assert sorted(tested) == sorted(splits["train"] + splits["test"])  # every case once
    assert len(tested) == len(set(tested))
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for index, fold in enumerate(folded["folds"]):
        assert fold["val"] == splits["val"] and not set(fold["test"]) & set(splits["val"])
        assert sorted(fold["train"] + fold["test"]) == sorted(tested)
        plain = data.fold_splits(folded, index)
        assert (plain["train"], plain["val"], plain["test"], plain["fold"]) == (
            fold["train"], fold["val"], fold["test"], index)
        assert "folds" not in plain
    assert data.with_folds(splits, 5, seed=1) == folded
    assert data.make_folds(list(reversed(tested)), 5, seed=1) == tests
    assert data.make_folds(tested, 5, seed=2) != tests


def test_folds_spread_every_stratum():
    cases = [f"c{i}" for i in range(12)]
    strata = {case: ("tumour",) if i < 3 else () for i, case in enumerate(cases)}  # 3 cases hold the class
    folds = data.make_folds(cases, 3, seed=0, strata=strata)
    assert [sum(strata[c] == ("tumour",) for c in fold) for fold in folds] == [1, 1, 1]
    folds = data.make_folds(cases, 3, seed=0, keep_out=["c11"])
    assert sorted(sum(folds, [])) == sorted(cases[:11])


def test_folds_round_trip_and_are_checked(tmp_path):
    splits = data.with_folds(data.make_splits([str(i) for i in range(10)], 0.2, seed=0), 3)
    path = data.save_splits(tmp_path / "splits.json", splits)
    assert data.load_splits(path) == splits
    assert data.without_cases(splits, {splits["folds"][0]["test"][0]})["folds"][0]["test"] == (
        splits["folds"][0]["test"][1:])
    broken = json.loads(path.read_text())
    broken["folds"][1]["test"].append(broken["folds"][0]["test"][0])
    broken["folds"][1]["train"].remove(broken["folds"][0]["test"][0])
    path.write_text(json.dumps(broken))
    with pytest.raises(data.DataError, match="test folds 0 and 1"):
        data.load_splits(path)
    with pytest.raises(ValueError, match="at least 4 cases"):
        data.make_folds(["a", "b", "c"], 4)
    with pytest.raises(ValueError, match="no folds"):
        data.fold_splits(data.make_splits(["a", "b", "c"], 0.3), 0)
