"""Users' own data: the nnU-Net v2 raw and Decathlon layouts in every file ending, the check,
what get_dataset("nnunet") serves, and its sample data. (Reading each ending: tests/data/io.)"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import data
import data.check
from data.io.geometry import GRID_TOLERANCE
from data.io.images import read_image_file
from data.nnunet.prepare import normalise
from data.sources import extract_fingerprint
from tests.data.closed_form import (
    chance_dice,
    dice,
    fit_class_means,
    nearest_class_mean,
    shuffled_pixels,
    split_arrays,
)
from tests.data.io.writers import DIRECTION, ORIGIN, SPACING_ZYX, VOLUME_ENDINGS, write_image
from tests.data.nnunet.writers import LABELS, synthetic_case, write_decathlon, write_nnunet_v2


def cases(count=3, shape=(6, 10, 12), channels=2):
    return {f"case_{n:02d}": synthetic_case(n, shape, channels) for n in range(count)}


# -- reading: both layouts, every ending, one canonical array -----------------------------------


@pytest.mark.parametrize("ending", VOLUME_ENDINGS)
def test_both_layouts_and_every_ending_read_a_case_to_the_same_arrays(tmp_path, ending):
    one = cases(1)
    decathlon = data.read_dataset_json(write_decathlon(tmp_path / "Task01_Test", one))
    reference = data.read_nnunet_case(decathlon, "case_00")
    spec = data.read_dataset_json(write_nnunet_v2(tmp_path / "Dataset001_Test", one, ending))
    assert (spec.layout, decathlon.layout) == ("nnU-Net v2", "Decathlon")
    image, label, meta = data.read_nnunet_case(spec, "case_00")
    assert image.shape == (2, 6, 10, 12) and image.dtype == np.float32 and label.dtype == np.uint8
    np.testing.assert_array_equal(image, one["case_00"][0])
    np.testing.assert_array_equal(image, reference[0])
    np.testing.assert_array_equal(label, reference[1])
    np.testing.assert_allclose(meta["spacing"], reference[2]["spacing"], rtol=1e-6)
    np.testing.assert_allclose(meta["affine"], reference[2]["affine"], atol=1e-5)
    assert meta["channels"] == ["CT", "T2"] and meta["labels"] == {"background": [0], "liver": [1], "spleen": [2]}
    assert meta["source"].endswith(f"case_00_0000{ending}") and meta["slice_axis"] == 0
    assert meta["original_shape"].tolist() == [6, 10, 12]


def test_explicit_dataset_map_of_nnunet_v2(tmp_path):
    root = write_nnunet_v2(tmp_path / "d", cases(1))
    (root / "imagesTr" / "case_00_0001.nii.gz").rename(root / "t2.nii.gz")
    description = json.loads((root / "dataset.json").read_text())
    description["dataset"] = {"first": {"images": ["imagesTr/case_00_0000.nii.gz", "t2.nii.gz"],
                                        "label": "labelsTr/case_00.nii.gz"}}
    (root / "dataset.json").write_text(json.dumps(description))
    spec = data.read_dataset_json(root)
    assert list(spec.cases) == ["first"]
    np.testing.assert_array_equal(data.read_nnunet_case(spec, "first")[0], synthetic_case(0)[0])


def test_macos_resource_forks_are_skipped(tmp_path):
    root = write_nnunet_v2(tmp_path / "v2", cases(2))
    for junk in ("imagesTr/._case_00_0000.nii.gz", "labelsTr/._case_00.nii.gz", "imagesTr/.DS_Store"):
        (root / junk).write_bytes(b"\x00\x05\x16\x07 not an image")
    spec = data.read_dataset_json(root)
    assert sorted(spec.cases) == ["case_00", "case_01"] and not spec.stray
    assert data.check_dataset("nnunet", root, progress=False).ok


# -- the check: every problem, one line each, naming the file -----------------------------------


@pytest.fixture
def broken(tmp_path):
    """Eight cases: five with one problem each, one with two, one without foreground, one clean."""
    root = write_nnunet_v2(tmp_path / "Dataset002_Broken", cases(8))
    images, labels = root / "imagesTr", root / "labelsTr"
    (images / "case_00_0001.nii.gz").unlink()  # missing channel
    image, label = synthetic_case(1)
    write_image(images / "case_01_0001.nii.gz", image[1][:, :, :-2])  # channel shapes differ
    write_image(labels / "case_02.nii.gz", synthetic_case(2)[1], spacing_zyx=(2.0, 0.8, 1.2))  # label spacing
    bad_values = synthetic_case(3)[1]
    bad_values[0, 0, 0] = 5
    write_image(labels / "case_03.nii.gz", bad_values)  # undeclared label value
    nan = synthetic_case(4)[0][1]
    nan[2, 3, 4] = np.nan
    write_image(images / "case_04_0001.nii.gz", nan)  # non-finite voxel in channel 1
    write_image(labels / "case_05.nii.gz", np.zeros((6, 10, 12), np.uint8))  # no foreground: a warning
    (labels / "case_06.nii.gz").unlink()
    (images / "case_06_0000.nii.gz").unlink()  # missing label and channel 0
    description = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**description, "numTraining": 9}))
    (images / "stray.nii.gz").write_bytes(b"")
    return root


def test_check_reports_every_problem_in_one_line_naming_the_file(broken):
    report = data.check_dataset("nnunet", broken, progress=False)
    messages = [message for _, message in report.problems]
    assert all("\n" not in message for message in messages)
    images, labels = broken / "imagesTr", broken / "labelsTr"
    expected_starts = {
        f"{broken / 'imagesTr' / 'stray.nii.gz'}: not named <case>_XXXX.nii.gz",
        f"{broken / 'dataset.json'}: numTraining is 9 but 8 training case(s) were found",
        f"{images / 'case_00_0001.nii.gz'}: missing channel 1 (T2) of case case_00",
        f"{images / 'case_01_0001.nii.gz'}: shape 6x10x10 differs from case_01_0000.nii.gz 6x10x12",
        f"{labels / 'case_02.nii.gz'}: spacing 2x0.8x1.2 mm differs from case_02_0000.nii.gz 3x0.8x1.2 mm",
        f"{labels / 'case_03.nii.gz'}: unknown label values 5; expected the labels of dataset.json",
        f"{images / 'case_04_0001.nii.gz'}: channel 1 (T2) holds 1 NaN or infinite voxel(s)",
        f"{images / 'case_06_0000.nii.gz'}: missing channel 0 (CT) of case case_06",
        f"{labels / 'case_06.nii.gz'}: missing label of case case_06",
    }
    for start in expected_starts:
        assert sum(message.startswith(start) for message in messages) == 1, (start, messages)
    assert len(messages) == len(expected_starts)
    assert [message for _, message in report.warnings] == [
        f"{labels / 'case_05.nii.gz'}: no foreground (every label is 0); expected the structure to segment in most "
        "cases"]
    assert report.failing == [str(broken), "case_00", "case_01", "case_02", "case_03", "case_04", "case_06"]
    assert report.cases["case"].tolist() == ["case_05", "case_07"]


@pytest.mark.parametrize("ending", [".nii.gz", ".mha"])
def test_channels_and_label_off_the_first_channels_grid_are_problems_naming_both_files(tmp_path, ending):
    """nnU-Net's check: every channel's and the label's origin, direction and spacing against the
    first channel's. An origin 100 mm away or a mirrored axis is a problem; header rounding is not."""
    root = write_nnunet_v2(tmp_path / "d", cases(4), ending, channels=("T1", "T2"))
    images, labels = root / "imagesTr", root / "labelsTr"
    shifted = write_image(images / f"case_00_0001{ending}", synthetic_case(0)[0][1],
                          origin=(ORIGIN[0] + 100.0, *ORIGIN[1:]))
    mirrored = write_image(images / f"case_01_0001{ending}", synthetic_case(1)[0][1], direction=DIRECTION * [1, 1, -1])
    label = write_image(labels / f"case_02{ending}", synthetic_case(2)[1],
                        origin=(ORIGIN[0], ORIGIN[1] - 100, ORIGIN[2]))
    rounding = GRID_TOLERANCE * min(SPACING_ZYX) / 2  # far below a voxel: float32 header rounding
    write_image(images / f"case_03_0001{ending}", synthetic_case(3)[0][1], origin=(ORIGIN[0] + rounding, *ORIGIN[1:]))
    grid = "expected every channel and the label on one grid"
    expected = {
        "case_00": f"{shifted}: origin differs from case_00_0000{ending}'s by 100 mm; {grid}",
        "case_01": f"{mirrored}: direction differs from case_01_0000{ending}'s (an axis turned by 180°); {grid}",
        "case_02": f"{label}: origin differs from case_02_0000{ending}'s by 100 mm; {grid}",
    }
    report = data.check_dataset("nnunet", root, progress=False)
    assert dict(report.problems) == expected and report.cases["case"].tolist() == ["case_03"]
    spec = data.read_dataset_json(root)
    for case, message in expected.items():  # what search and retraining read
        with pytest.raises(data.DataError, match=f"^{re.escape(message)}$"):
            data.read_nnunet_case(spec, case)
    with pytest.raises(data.DataError, match=r"3 problem\(s\) in 3 case\(s\) \(case_00, case_01, case_02\)"):
        data.verify_dataset("nnunet", root)


def test_check_command_exit_status_and_listing(broken, capsys):
    assert data.check.main(["--dataset", "nnunet", "--data-root", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "2 readable, 7 with problems" in out and "9 problems:" in out and "1 warning(s):" in out
    shutil.rmtree(broken / "imagesTr")
    shutil.rmtree(broken / "labelsTr")
    write_nnunet_v2(broken, cases(2))
    assert data.check.main(["--dataset", "nnunet", "--data-root", str(broken)]) == 0


def test_verify_dataset_refuses_naming_every_failing_case(broken):
    with pytest.raises(data.DataError) as caught:
        data.verify_dataset("nnunet", broken)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{broken}: 9 problem(s) in 7 case(s) (the data set, "
                                                      "case_00, case_01, case_02, case_03, case_04, case_06)")
    assert "python -m data.check --dataset nnunet" in message
    assert len(caught.value.report.problems) == 9
    clean = write_nnunet_v2(broken.parent / "clean", cases(2))
    assert data.verify_dataset("nnunet", clean).ok


def test_dataset_json_mistakes_are_one_line_errors(tmp_path):
    root = write_nnunet_v2(tmp_path / "d", cases(1))
    original = json.loads((root / "dataset.json").read_text())
    mistakes = {
        "file_ending": (".jpg", r"file_ending is '.jpg'; expected one of .nii.gz, .nii, .mha"),
        "labels": ({"background": 0, "liver": 1, "spleen": 3}, r"label values 0, 1, 3; expected consecutive"),
        "channel_names": ({"1": "CT"}, r"channel_names keys \['1'\]; expected 0, 1, ... 0"),
    }
    for key, (value, pattern) in mistakes.items():
        (root / "dataset.json").write_text(json.dumps({**original, key: value}))
        with pytest.raises(data.DataError, match=rf"^{root / 'dataset.json'}: {pattern}"):
            data.read_dataset_json(root)
    (root / "dataset.json").write_text(json.dumps({**original, "labels": {"background": 0, "liver": 1,
                                                                          "ignore": 2}}))
    with pytest.raises(data.DataError, match="label 'ignore'.*cannot be served"):
        data.get_dataset("nnunet", root)
    with pytest.raises(data.DataError, match=rf"did you mean {root}\?"):
        data.read_dataset_json(tmp_path)  # the parent of a data set folder
    (root / "dataset.json").unlink()
    with pytest.raises(data.DataError, match=rf"^{root}: no dataset.json; expected an nnU-Net v2"):
        data.read_dataset_json(root)


def test_wrong_file_ending_hints_at_the_files_found(tmp_path):
    root = write_nnunet_v2(tmp_path / "d", cases(1), ending=".nii")
    original = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**original, "file_ending": ".nii.gz"}))
    report = data.check_dataset("nnunet", root, progress=False)
    assert report.problems[0][1].startswith(f"{root / 'imagesTr'}: no training cases found")
    assert "imagesTr holds .nii files; is file_ending right?" in report.problems[0][1]


def test_a_case_with_another_file_ending_is_named_not_only_counted(tmp_path):
    root = write_nnunet_v2(tmp_path / "d", cases(3))
    image, label = synthetic_case(1)
    for path in [*(root / "imagesTr").glob("case_01_*"), root / "labelsTr" / "case_01.nii.gz"]:
        path.unlink()
    others = [write_image(root / "imagesTr" / f"case_01_{index:04d}.nii", values) for index, values in enumerate(image)]
    others.append(write_image(root / "labelsTr" / "case_01.nii", label))
    messages = [message for _, message in data.check_dataset("nnunet", root, progress=False).problems]
    assert messages[:3] == [f"{path}: ending .nii is not the file_ending .nii.gz of dataset.json; expected "
                            f"{path.name}.gz (a file with another ending is not read)" for path in others]
    assert messages[3].startswith(f"{root / 'dataset.json'}: numTraining is 3 but 2 training case(s) were found")
    assert len(messages) == 4


def rgb_set(tmp_path, grey_case: bool = True):
    """A PNG data set declaring R, G, B whose first case is a grey image (where RGB is declared)."""
    root = write_nnunet_v2(tmp_path / "png", {}, ending=".png", channels=("R", "G", "B"), numTraining=2)
    for n in range(2):
        label = np.zeros((20, 30), np.uint8)
        label[5:12, 4:14] = 1
        rgb = np.stack([label * 80, label * 40, 255 - label], -1)
        write_image(root / "imagesTr" / f"img{n}_0000.png", rgb[..., 0] if n == 0 and grey_case else rgb)
        write_image(root / "labelsTr" / f"img{n}.png", label)
    return root


GREY = ("grey image; expected 3 channels (R, G, B): one image holding them (RGB), or one file per channel "
        "(img0_0000.png, img0_0001.png, img0_0002.png)")


def test_a_grey_png_where_rgb_is_declared_is_called_grey(tmp_path):
    root = rgb_set(tmp_path)
    report = data.check_dataset("nnunet", root, progress=False)
    assert report.problems == [("img0", f"{root / 'imagesTr' / 'img0_0000.png'}: {GREY}")]
    preprocessing = data.preprocessing_spec("nnunet", root, image_size=16)
    item = next(item for item in data.find_prediction_inputs(root / "imagesTr", preprocessing) if item.case == "img0")
    with pytest.raises(data.DataError) as caught:
        data.read_prediction_input(item, preprocessing)
    assert str(caught.value) == f"{item.source}: {GREY}"
    # three grey files, one per channel, are the other layout nnU-Net reads
    for index in (1, 2):
        shutil.copy(root / "imagesTr" / "img0_0000.png", root / "imagesTr" / f"img0_{index:04d}.png")
    assert data.check_dataset("nnunet", root, progress=False).ok


# -- get_dataset: slices along the coarsest axis, targets, 3D, normalisation --------------------


def make_set(tmp_path, labels=LABELS, channels=("CT", "T2"), shape=(12, 12, 6), spacing=(1.0, 1.0, 4.0),
             count=5, **extra):
    """Cases whose coarsest axis is the last one (x), so slicing along axis 0 would be wrong."""
    return write_nnunet_v2(tmp_path / "Dataset003", cases(count, shape, len(channels)), channels=channels,
                           labels=labels, spacing_zyx=spacing, **extra)


def test_volumes_are_served_as_slices_along_the_coarsest_axis(tmp_path):
    root = make_set(tmp_path)
    train = data.get_dataset("nnunet", root, "train", image_size=12, cache_dir=tmp_path / "cache", augment=False)
    assert (train.in_channels, train.num_classes, train.spatial_dims) == (2, 3, 2)
    assert len(train) == 6 * len(train.cases)  # shape (12, 12, 6): 6 slices along x
    case = train.cases[0]
    image, label = synthetic_case(int(case[-2:]), (12, 12, 6))
    for index in (0, 4):
        item = train[index]
        assert item["case"] == case and item["meta"]["slice_index"] == index
        assert item["image"].shape == (2, 12, 12) and item["label"].shape == (12, 12)
        assert item["label"].dtype == torch.int64
        np.testing.assert_array_equal(item["label"].numpy(), label[:, :, index])
        t2 = image[1]
        np.testing.assert_allclose(item["image"][1].numpy(), ((t2 - t2.mean()) / t2.std())[:, :, index],
                                   rtol=1e-4, atol=1e-5)
    meta = train.case_meta(case)
    assert meta["axes"].tolist() == [2, 0, 1] and meta["original_shape"].tolist() == [6, 12, 12]
    assert meta["spacing"].tolist() == [4.0, 1.0, 1.0]
    # served (slice, row, column) = read (row, column, slice): the affines place them alike
    read_affine = data.read_nnunet_case(data.read_dataset_json(root), case)[2]["affine"]
    for s, a, b in [(0, 0, 0), (5, 3, 7), (2, 11, 1)]:
        np.testing.assert_allclose(meta["affine"] @ [s, a, b, 1], read_affine @ [a, b, s, 1], atol=1e-9)
    # the served stack goes back to the read order, for writing a prediction like the source
    stack = np.stack([train[i]["label"].numpy() for i in range(6)])
    np.testing.assert_array_equal(data.volume_from_slices(stack, meta), label)


def test_ct_channels_use_the_training_fingerprint(tmp_path):
    root = make_set(tmp_path)
    train = data.get_dataset("nnunet", root, "train", image_size=12, cache_dir=tmp_path / "cache", augment=False)
    test = data.get_dataset("nnunet", root, "test", image_size=12, cache_dir=tmp_path / "cache")
    properties = extract_fingerprint("nnunet", root, train.splits["train"])[
        "foreground_intensity_properties_per_channel"]["0"]
    low, high = properties["percentile_00_5"], properties["percentile_99_5"]
    case = test.cases[0]
    ct = synthetic_case(int(case[-2:]), (12, 12, 6))[0][0]
    expected = (np.clip(ct, low, high) - properties["mean"]) / properties["std"]
    np.testing.assert_allclose(test[2]["image"][0].numpy(), expected[:, :, 2], rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected, (ct - ct.mean()) / ct.std(), atol=0.1)  # not a per-image z-score


@pytest.mark.parametrize("labels, extra, classes, shape, dtype", [
    ({"background": 0, "tumour": 1}, {}, 1, (1, 12, 12), torch.float32),
    (LABELS, {}, 3, (12, 12), torch.int64),
    ({"background": 0, "organs": [1, 2], "spleen": 2}, {"regions_class_order": [1, 2]}, 2, (2, 12, 12),
     torch.float32),
])
def test_binary_multiclass_and_region_targets(tmp_path, labels, extra, classes, shape, dtype):
    root = make_set(tmp_path, labels=labels, **extra)
    if classes == 1:  # a one-foreground set: relabel the cases' 2s as 1
        for path in (root / "labelsTr").iterdir():
            write_image(path, np.minimum(read_image_file(path, None)[0][0], 1), spacing_zyx=(1.0, 1.0, 4.0))
    assert data.dataset_facts("nnunet", root).num_classes == classes
    dataset = data.get_dataset("nnunet", root, "val", image_size=12, cache_dir=tmp_path / "cache")
    assert dataset.num_classes == classes
    raw = read_image_file(root / "labelsTr" / f"{dataset.cases[0]}.nii.gz", None)[0][0][:, :, 3]
    item = dataset[3]
    assert item["label"].shape == shape and item["label"].dtype == dtype
    target = item["label"].numpy()
    if classes == 1:
        np.testing.assert_array_equal(target[0], raw == 1)
    elif classes == 3:
        np.testing.assert_array_equal(target, raw)
    else:
        np.testing.assert_array_equal(target[0], np.isin(raw, [1, 2]))
        np.testing.assert_array_equal(target[1], raw == 2)
        np.testing.assert_array_equal(data.regions_to_labels(target, data.read_dataset_json(root)), raw)


def test_volumes_for_a_3d_path(tmp_path):
    root = make_set(tmp_path, shape=(6, 10, 12), spacing=SPACING_ZYX)
    options = dict(spatial_dims=3, cache_dir=tmp_path / "cache")
    assert data.dataset_facts("nnunet", root, spatial_dims=3).spatial_dims == 3
    train = data.get_dataset("nnunet", root, "train", crop_size=(4, 8, 8), foreground_prob=1.0, **options)
    item = train[0]
    assert train.spatial_dims == 3 and item["image"].shape == (2, 4, 8, 8) and item["label"].shape == (4, 8, 8)
    assert item["label"].dtype == torch.int64 and item["label"].max() > 0
    whole = data.get_dataset("nnunet", root, "test", **options)[0]
    assert whole["image"].shape == (2, 6, 10, 12) and whole["label"].shape == (6, 10, 12)
    np.testing.assert_allclose(whole["meta"]["spacing"], SPACING_ZYX, rtol=1e-6)
    with pytest.raises(ValueError, match="image_size applies to 2D datasets"):
        data.get_dataset("nnunet", root, image_size=16, **options)


def test_2d_image_files_are_served_as_they_are(tmp_path):
    root = write_nnunet_v2(tmp_path / "png", {}, ending=".png", channels=("R", "G", "B"))
    for n in range(4):
        label = np.zeros((20, 30), np.uint8)
        label[5:12, 4 + n:14 + n] = 1
        label[13:18, 18:26] = 2
        write_image(root / "imagesTr" / f"img{n}_0000.png", np.stack([label * 80, label * 40, 255 - label], -1))
        write_image(root / "labelsTr" / f"img{n}.png", label)
    description = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**description, "numTraining": 4}))
    assert data.check_dataset("nnunet", root, progress=False).ok
    dataset = data.get_dataset("nnunet", root, "train", cache_dir=tmp_path / "cache", augment=False)
    assert len(dataset) == len(dataset.cases) and dataset.in_channels == 3
    item = dataset[0]
    # planned size: the median 20 x 30 in-plane -> 32
    assert item["image"].shape == (3, 32, 32) and item["meta"]["original_shape"].tolist() == [20, 30]
    with pytest.raises(data.DataError, match=r"dataset.json: describes 2D images \(.png\); spatial_dims=3"):
        data.get_dataset("nnunet", root, spatial_dims=3, cache_dir=tmp_path / "cache")


def test_normalisation_schemes_by_channel_name():
    image = np.stack([np.arange(10.0), np.arange(10.0) * 2, np.arange(10.0) + 5, np.full(10, 51.0)])
    out = normalise(image, ("ct", "MRI", "noNorm", "rgb_to_0_1"), {"0": [1.0, 8.0, 4.0, 2.0]})
    np.testing.assert_allclose(out[0], (np.clip(np.arange(10.0), 1, 8) - 4) / 2)
    np.testing.assert_allclose(out[1], (image[1] - image[1].mean()) / image[1].std(), rtol=1e-6)
    np.testing.assert_array_equal(out[2], image[2])
    np.testing.assert_allclose(out[3], 0.2)


# -- sample data --------------------------------------------------------------------------------


def digests(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("variant, count, channels", [("nifti", 8, 2), ("png", 12, 3), ("decathlon", 8, 2)])
def test_sample_variants_are_small_deterministic_and_clean(tmp_path, variant, count, channels):
    root = data.write_sample("nnunet", tmp_path / variant, variant=variant)
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 1 * 2**20
    assert digests(data.write_sample("nnunet", tmp_path / "again", variant=variant)) == digests(root)
    assert data.is_sample(root, "nnunet")
    report = data.check_dataset("nnunet", root, progress=False)
    assert report.ok and not report.warnings and len(report.cases) == count
    assert set(report.cases["labels"].iloc[0]) == {0, 1, 2}
    facts = data.dataset_facts("nnunet", root)
    assert (facts.in_channels, facts.num_classes) == (channels, 3)
    if variant == "decathlon":
        assert list((root / "imagesTr").glob("._*"))  # as in the published archives, and skipped


def test_sample_layouts_hold_the_same_cases(tmp_path):
    v2 = data.read_dataset_json(data.write_sample("nnunet", tmp_path / "v2"))
    msd = data.read_dataset_json(data.write_sample("nnunet", tmp_path / "msd", variant="decathlon"))
    for mine, theirs in zip(data.read_nnunet_case(v2, "abdomen_003"), data.read_nnunet_case(msd, "abdomen_003")):
        if isinstance(mine, dict):
            np.testing.assert_allclose(mine["affine"], theirs["affine"])
        else:
            np.testing.assert_array_equal(mine, theirs)


def test_sample_command_and_default_root(tmp_path, monkeypatch):
    from data.sample.__main__ import main

    assert main(["--dataset", "nnunet", "--variant", "png", "--out", str(tmp_path / "png")]) == 0
    assert (tmp_path / "png" / "imagesTr" / "abdomen_001_0000.png").is_file()
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path / "cache"))
    dataset = data.get_dataset("nnunet")  # no root: the sample, at its own size
    assert dataset.root == tmp_path / "cache" / "sample" / "nnunet"
    assert dataset[0]["image"].shape == (2, 48, 48)


@pytest.mark.parametrize("variant", ["nifti", "png"])
def test_sample_is_learnable_for_every_class(tmp_path, variant):
    """The nearest class mean (float64, fitted on the train split) finds every foreground class
    of the test split far above chance; fitted on pixel-shuffled labels it does not."""
    root = data.write_sample("nnunet", tmp_path / "sample", variant=variant)
    train = data.get_dataset("nnunet", root, "train", cache_dir=tmp_path / "cache", augment=False)
    test = data.get_dataset("nnunet", root, "test", cache_dir=tmp_path / "cache", augment=False)
    train_images, train_labels = split_arrays(train)
    test_images, truth = split_arrays(test)
    predicted = nearest_class_mean(fit_class_means(train_images, train_labels, 3), test_images)
    control = nearest_class_mean(fit_class_means(train_images, shuffled_pixels(train_labels), 3), test_images)
    for value in (1, 2):
        chance = chance_dice(truth == value)
        score = dice(predicted == value, truth == value)
        assert score > max(0.5, chance + 0.25), (value, score, chance)
        assert dice(control == value, truth == value) < chance + 0.05, value


def test_png_sample_file_formats(tmp_path):
    root = data.write_sample("nnunet", tmp_path / "png", variant="png")
    with Image.open(root / "imagesTr" / "abdomen_001_0000.png") as image:
        assert image.mode == "RGB"
    with Image.open(root / "labelsTr" / "abdomen_001.png") as label:
        assert label.mode == "L" and set(np.unique(np.asarray(label))) == {0, 1, 2}
