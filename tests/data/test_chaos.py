"""CHAOS: DICOM/PNG pairing by file name, HU conversion, MR organs, bad inputs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import data
from data.io.png import read_png, write_png, write_png_1bit
from data.sample.chaos import dicom_image, write_chaos, write_ct_patient


def ct_root(tmp_path, patients=("1",), slices=6, size=32):
    return write_chaos(tmp_path / "chaos", ct_patients=patients, mr_patients=(), slices=slices, ct_size=size)


def write_marked_patient(folder, slices=5, size=16):
    """Slice k holds a bright square at row 2k; mask k marks exactly it. z DEcreases with the file
    index and InstanceNumber runs backwards, so sorting by either header misaligns the pairs."""
    (folder / "DICOM_anon").mkdir(parents=True)
    (folder / "Ground").mkdir(parents=True)
    for k in range(slices):
        square = np.zeros((size, size), bool)
        square[2 * k:2 * k + 2, 3:7] = True
        pixels = np.where(square, 1224, 1024).astype(np.uint16)  # 200 HU in 0 HU
        header = dicom_image("marked", k, "CT", pixels, [0.0, 0.0, -2.5 * k], 0.8, 2.5)
        header.RescaleIntercept, header.RescaleSlope = -1024, 1
        header.InstanceNumber = slices - k
        header.save_as(folder / "DICOM_anon" / f"i{k:04d},0000b.dcm", enforce_file_format=True)
        write_png_1bit(folder / "Ground" / f"liver_GT_{k:03d}.png", square)


def test_masks_pair_with_their_own_dicom_by_name_not_position(tmp_path):
    patient = tmp_path / "Train_Sets" / "CT" / "3"
    write_marked_patient(patient)
    image, label, meta = data.read_chaos_case(patient)
    for k in range(len(image)):
        np.testing.assert_array_equal(label[k] == 1, image[k] > 100, err_msg=f"slice {k} misaligned")
    # The same files paired by ImagePositionPatient would not match: the test has teeth.
    dicoms = sorted((patient / "DICOM_anon").glob("*.dcm"))
    by_position = sorted(dicoms, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    assert by_position != dicoms
    # Geometry: slice spacing from the positions, the slice axis pointing down in z.
    np.testing.assert_allclose(meta["spacing"], [2.5, 0.8, 0.8])
    assert meta["affine"][2, 0] == pytest.approx(-2.5)
    assert meta["source"][0].endswith("i0000,0000b.dcm")


def test_sample_patients_with_decreasing_z_stay_aligned(tmp_path):
    rng = np.random.default_rng(0)
    patient = tmp_path / "7"
    write_ct_patient(patient, rng, "7", slices=8, size=32, z_decreasing=True)
    image, label, _ = data.read_chaos_case(patient)
    for k in range(len(image)):
        if label[k].any():
            assert image[k][label[k] == 1].mean() > 110  # the enhanced liver (150 HU), not tissue (40 HU)


def test_ct_is_converted_to_hounsfield_units(tmp_path):
    root = ct_root(tmp_path)
    dicom = sorted((root / "Train_Sets" / "CT" / "1" / "DICOM_anon").glob("*.dcm"))[0]
    header = pydicom.dcmread(dicom)
    image, _, _ = data.read_chaos_case(root / "Train_Sets" / "CT" / "1")
    np.testing.assert_allclose(image[0], header.pixel_array * 1.0 - 1024.0)
    assert image.min() < -900  # air


def test_natural_sort_orders_unpadded_numbers():
    from pathlib import Path

    from data.chaos import natural_key
    names = ["IMG-0004-00010.dcm", "i10.dcm", "i2.dcm", "i1.dcm"]
    assert sorted(names[1:], key=lambda n: natural_key(Path(n))) == ["i1.dcm", "i2.dcm", "i10.dcm"]


def test_preprocessing_resizes_to_image_size_in_unit_range(tmp_path):
    root = ct_root(tmp_path, size=32)
    image, label, meta = data.preprocess_chaos_case(root / "Train_Sets" / "CT" / "1", image_size=16)
    assert image.shape == (6, 1, 16, 16) and label.shape == (6, 16, 16)
    assert 0.0 <= image.min() and image.max() <= 1.0
    np.testing.assert_allclose(meta["spacing"][1:], 2 * 2.8 * 128 / 32)


def test_mr_organ_labels(tmp_path):
    root = write_chaos(tmp_path / "chaos", ct_patients=(), mr_patients=("1",), mr_size=32, mr_slices=4)
    for sequence in ("T2SPIR", "T1DUAL_InPhase", "T1DUAL_OutPhase"):
        image, label, _ = data.read_chaos_case(root / "Train_Sets" / "MR" / "1", "MR", sequence)
        assert image.shape == label.shape == (4, 32, 32)
        assert set(np.unique(label)) == {0, 1, 2, 3, 4}
    grey = read_png(sorted((root / "Train_Sets" / "MR" / "1" / "T2SPIR" / "Ground").glob("*.png"))[1])
    np.testing.assert_array_equal(label[1] == 4, grey == 252)  # spleen


def test_mr_dataset_serves_organs_or_liver(tmp_path, monkeypatch):
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path / "cache"))
    root = write_chaos(tmp_path / "chaos", ct_patients=(), mr_patients=("1", "2", "3", "5"), mr_size=32, mr_slices=4)
    organs = data.get_dataset("chaos", root, split="test", modality="MR", image_size=32)
    liver = data.get_dataset("chaos", root, split="test", modality="MR", organs=False, image_size=32)
    assert organs.num_classes == 5 and liver.num_classes == 1
    item, binary = organs[1], liver[1]
    assert item["label"].dtype.is_floating_point is False and item["label"].shape == (32, 32)
    np.testing.assert_array_equal(binary["label"][0].numpy(), (item["label"] == 1).numpy())


# ---- bad input ----

def error(call):
    with pytest.raises(data.DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_count_mismatch(tmp_path):
    patient = ct_root(tmp_path) / "Train_Sets" / "CT" / "1"
    sorted((patient / "Ground").glob("*.png"))[-1].unlink()
    message = error(lambda: data.read_chaos_case(patient))
    assert message.startswith(str(patient)) and "6 DICOM files" in message and "5 mask PNGs" in message


def test_truncated_dicom(tmp_path):
    patient = ct_root(tmp_path) / "Train_Sets" / "CT" / "1"
    dicom = sorted((patient / "DICOM_anon").glob("*.dcm"))[2]
    dicom.write_bytes(dicom.read_bytes()[:-500])
    message = error(lambda: data.read_chaos_case(patient))
    assert message.startswith(str(dicom)) and "truncated" in message


def test_unreadable_png(tmp_path):
    patient = ct_root(tmp_path) / "Train_Sets" / "CT" / "1"
    mask = sorted((patient / "Ground").glob("*.png"))[1]
    mask.write_bytes(b"\x89PNG broken")
    assert error(lambda: data.read_chaos_case(patient)).startswith(str(mask))


def test_mask_shape_mismatch(tmp_path):
    patient = ct_root(tmp_path) / "Train_Sets" / "CT" / "1"
    mask = sorted((patient / "Ground").glob("*.png"))[0]
    write_png_1bit(mask, np.zeros((30, 32), bool))
    message = error(lambda: data.read_chaos_case(patient))
    assert message.startswith(str(mask)) and "(30, 32)" in message


def test_unknown_mask_values(tmp_path):
    patient = ct_root(tmp_path) / "Train_Sets" / "CT" / "1"
    mask = sorted((patient / "Ground").glob("*.png"))[0]
    write_png(mask, np.full((32, 32), 7, np.uint8))
    message = error(lambda: data.read_chaos_case(patient))
    assert message.startswith(str(mask)) and "unknown label values 7" in message


def test_wrong_modality_in_header(tmp_path):
    root = write_chaos(tmp_path / "chaos", ct_patients=(), mr_patients=("1",), mr_size=16, mr_slices=2)
    patient = root / "Train_Sets" / "MR" / "1" / "T2SPIR"  # MR DICOMs where CT is expected
    assert "DICOM modality MR; expected CT" in error(lambda: data.read_chaos_case(patient))


def test_wrong_layout_and_empty_root(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "empty" in error(lambda: data.find_chaos_cases(tmp_path / "empty"))
    (tmp_path / "other" / "x").mkdir(parents=True)
    message = error(lambda: data.find_chaos_cases(tmp_path / "other"))
    assert "Train_Sets/CT/<patient>/DICOM_anon" in message
