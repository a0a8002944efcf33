"""get_dataset on the sample data: the item contract other packages rely on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import data


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("lwnas-cache")


@pytest.mark.parametrize("name, channels, classes, label_shape, label_dtype", [
    ("dsb2018", 3, 1, (1, 64, 64), torch.float32),
    ("chaos", 1, 1, (1, 64, 64), torch.float32),
    ("promise12", 1, 1, (1, 64, 64), torch.float32),
])
def test_2d_items(cache, name, channels, classes, label_shape, label_dtype):
    dataset = data.get_dataset(name, cache_dir=cache)
    assert (dataset.in_channels, dataset.num_classes, dataset.spatial_dims) == (channels, classes, 2)
    item = dataset[len(dataset) - 1]
    assert item["image"].shape == (channels, 64, 64) and item["image"].dtype == torch.float32
    assert item["label"].shape == label_shape and item["label"].dtype == label_dtype
    assert set(item["label"].unique().tolist()) <= {0.0, 1.0}
    assert item["case"] == dataset.case_of(len(dataset) - 1) and item["case"] in dataset.cases
    meta = item["meta"]
    assert meta["spacing"].shape == (2,) and meta["affine"].shape == (4, 4)
    batch = default_collate([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, channels, 64, 64) and isinstance(batch["meta"]["source"][0], str)


def test_chaos_normalisation_uses_the_spec_constants(cache):
    dataset = data.get_dataset("chaos", split="test", cache_dir=cache)
    raw = np.asarray(dataset._array(dataset.cases[0], "image")[0])
    np.testing.assert_allclose(dataset[0]["image"].numpy(), (raw - 0.3667) / 0.3533, rtol=1e-5)


@pytest.mark.parametrize("target, shape, dtype, values", [
    ("labels", (1, 48, 56, 40), torch.int64, {0, 1, 2, 4}),
    ("index", (48, 56, 40), torch.int64, {0, 1, 2, 3}),
    ("regions", (3, 48, 56, 40), torch.float32, {0.0, 1.0}),
])
def test_brats_targets_on_whole_validation_volumes(cache, target, shape, dtype, values):
    dataset = data.get_dataset("brats", split="val", cache_dir=cache, target=target)
    assert (dataset.in_channels, dataset.spatial_dims) == (4, 3)
    assert dataset.num_classes == (3 if target == "regions" else 4)
    item = dataset[0]
    assert item["image"].shape == (4, 48, 56, 40)
    assert item["label"].shape == shape and item["label"].dtype == dtype
    assert set(item["label"].unique().tolist()) == values
    labels = data.get_dataset("brats", split="val", cache_dir=cache)[0]["label"][0].numpy()
    if target == "index":
        np.testing.assert_array_equal(data.brats_index_to_labels(item["label"].numpy()), labels)
    if target == "regions":
        np.testing.assert_array_equal(data.brats_regions_to_labels(item["label"].numpy()), labels)


def test_brats_training_items_are_crops(cache):
    dataset = data.get_dataset("brats", cache_dir=cache, crop_size=24, foreground_prob=1.0)
    item = dataset[0]
    assert item["image"].shape == (4, 24, 24, 24) and item["label"].shape == (1, 24, 24, 24)
    assert item["label"].max() > 0  # foreground-centred
    assert item["meta"]["original_shape"].tolist() == [48, 56, 40]


def test_validation_split_serves_random_crops_for_a_search(cache):
    whole = data.get_dataset("brats", split="val", cache_dir=cache, crop_size=16)
    assert whole[0]["image"].shape == (4, 48, 56, 40)  # the default: whole volumes
    crops = data.get_dataset("brats", split="val", cache_dir=cache, crop_size=16, augment=False,
                             random_crop=True, crops_per_case=3, target="regions")
    assert crops.cases == whole.cases and len(crops) == 3 * len(whole.cases)
    items = [crops[i] for i in range(len(crops))]
    assert all(item["image"].shape == (4, 16, 16, 16) and item["label"].shape == (3, 16, 16, 16)
               for item in items)
    assert {item["case"] for item in items} == set(whole.cases)
    # each item of a case is its own crop: a window of the case's volume, not the same one
    volume = whole[0]["image"].numpy()
    corners = []
    for item in items:
        crop = item["image"].numpy()
        matches = [(i, j, k) for i in range(48 - 15) for j in range(56 - 15) for k in range(40 - 15)
                   if np.array_equal(volume[:, i:i + 16, j:j + 16, k:k + 16], crop)]
        assert matches, "a crop that is no window of its volume"
        corners.append(matches[0])
    assert len(set(corners)) > 1
    # the crops of an epoch are fixed by (seed, epoch, item); another epoch draws others
    again = [crops[i]["image"] for i in range(len(crops))]
    assert all(torch.equal(a["image"], b) for a, b in zip(items, again))
    crops.set_epoch(1)
    assert not all(torch.equal(a["image"], crops[i]["image"]) for i, a in enumerate(items))
    with pytest.raises(ValueError, match="crops_per_case=2 needs random crops"):
        data.get_dataset("brats", split="val", cache_dir=cache, crops_per_case=2)
    with pytest.raises(ValueError, match="crops_per_case must be an integer >= 1"):
        data.get_dataset("brats", cache_dir=cache, crops_per_case=0)


def test_unknown_names_options_and_splits(cache):
    with pytest.raises(ValueError, match="did you mean chaos"):
        data.get_dataset("chaso", cache_dir=cache)
    with pytest.raises(TypeError, match="unknown option.*modalty"):
        data.get_dataset("chaos", cache_dir=cache, modalty="MR")
    with pytest.raises(ValueError, match="unknown split 'training'"):
        data.get_dataset("chaos", split="training", cache_dir=cache)


def test_skip_bad_lists_the_bad_case(tmp_path):
    from data.sample.promise12 import write_promise12
    root = write_promise12(tmp_path / "p", cases=5, shape_zyx=(4, 16, 16))
    dataset = data.get_dataset("promise12", root, "train", image_size=16, cache_dir=tmp_path / "c")
    bad = dataset.cases[0]
    (root / f"{bad}.raw").write_bytes(b"\0" * 10)
    with pytest.raises(data.DataError, match=f"{bad}.mhd: unreadable or truncated"):
        data.get_dataset("promise12", root, "train", image_size=16, cache_dir=tmp_path / "c")
    kept = data.get_dataset("promise12", root, "train", image_size=16, cache_dir=tmp_path / "c", skip_bad=True)
    assert [case for case, _ in kept.skipped] == [bad] and bad not in kept.cases
    assert "truncated" in kept.skipped[0][1]
    assert kept.splits == dataset.splits  # skipping does not reshuffle the split


def test_the_facts_say_the_size_the_data_is_served_at(cache, tmp_path):
    # the sample data's own small sizes; real data the preset's side (None: planned) and no crop
    dsb = data.dataset_facts("dsb2018")
    assert (dsb.sample, dsb.image_size, dsb.crop_size) == (True, 64, None)
    assert data.get_dataset("dsb2018", split="val", cache_dir=cache).image_size == dsb.image_size
    brats = data.dataset_facts("brats")
    assert (brats.image_size, brats.crop_size) == (None, data.get_preset("brats").sample_crop_size)
    real = data.dataset_facts("dsb2018", tmp_path)
    assert (real.sample, real.image_size, real.crop_size) == (False, 256, None)
    assert data.dataset_facts("brats", tmp_path).crop_size is None
