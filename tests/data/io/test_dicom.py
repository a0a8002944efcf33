"""The DICOM series rule (data.io.dicom): a folder holds one series of one patient whose slices
step uniformly along the slice normal. Training (the CHAOS reader), `lwnas check` and prediction
inputs read series through it, so each refuses the same folders with the same line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

import data
from data.io.dicom import SLICE_STEP_TOLERANCE, series_geometry
from data.sample.chaos import write_chaos


def headers(z_positions, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)):
    """Geometry headers of one series with slices at these positions along z."""
    return [{"PixelSpacing": [0.5, 0.5], "ImageOrientationPatient": list(orientation),
             "ImagePositionPatient": [0.0, 0.0, float(z)], "SliceThickness": 3.0,
             "SeriesInstanceUID": "1.2.3", "PatientID": "p"} for z in z_positions]


def files(count):
    return [Path("series") / f"i{k}.dcm" for k in range(count)]


def rule_error(positions):
    with pytest.raises(data.DataError) as caught:
        series_geometry(files(len(positions)), headers(positions), (4, 4))
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_uniform_steps_within_the_tolerance_pass_and_a_gap_fails():
    step = 3.0
    within = step * SLICE_STEP_TOLERANCE * 0.9
    geometry = series_geometry(files(6), headers([0, 3, 6 + within, 9, 12, 15]), (4, 4))
    assert geometry["spacing"][0] == step and geometry["original_shape"].tolist() == [6, 4, 4]
    beyond = step * SLICE_STEP_TOLERANCE * 1.5
    assert "not evenly spaced" in rule_error([0, 3, 6 + beyond, 9, 12, 15])
    message = rule_error([0, 3, 6, 12, 15, 18])  # the slice at 9 mm is missing
    assert message.startswith("series: slice positions are not evenly spaced: i2.dcm to i3.dcm steps 6 mm "
                              "along the slice normal, the series' median step 3 mm")
    # decreasing positions are uniform too (CHAOS CT files run down in z)
    assert series_geometry(files(4), headers([9, 6, 3, 0]), (4, 4))["affine"][2, 0] == -3.0
    assert "one position" in rule_error([5, 5, 5])


def test_a_slice_of_another_orientation_or_without_position_is_refused():
    tilted = headers([0, 3, 6])
    tilted[1]["ImageOrientationPatient"] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # a coronal slice among axial ones
    with pytest.raises(data.DataError, match=r"^series: i1.dcm is oriented otherwise than i0.dcm"):
        series_geometry(files(3), tilted, (4, 4))
    unplaced = headers([0, 3, 6])
    unplaced[2]["ImagePositionPatient"] = None
    with pytest.raises(data.DataError, match=r"^series/i2.dcm: missing ImagePositionPatient"):
        series_geometry(files(3), unplaced, (4, 4))


@pytest.fixture
def chaos(tmp_path):
    return write_chaos(tmp_path / "chaos", ct_patients=("1", "2", "5"), mr_patients=(), slices=6, ct_size=16)


def drop_slice(patient, index=3):
    """One missing slice, its mask dropped too (so the counts still agree)."""
    sorted((patient / "DICOM_anon").glob("*.dcm"))[index].unlink()
    sorted((patient / "Ground").glob("*.png"))[index].unlink()


def add_series(patient, other, same_patient=True):
    """`other`'s series copied into `patient`'s folder, as a second series of that patient."""
    patient_id = pydicom.dcmread(next((patient / "DICOM_anon").glob("*.dcm"))).PatientID
    for k, path in enumerate(sorted((other / "DICOM_anon").glob("*.dcm"))):
        header = pydicom.dcmread(path)
        if same_patient:
            header.PatientID = patient_id
        header.save_as(patient / "DICOM_anon" / f"j{k:04d}.dcm", enforce_file_format=True)
    for k, path in enumerate(sorted((other / "Ground").glob("*.png"))):
        shutil.copy(path, patient / "Ground" / f"m{k:03d}.png")  # the counts agree: only the rule can tell


def test_a_missing_slice_is_refused_naming_the_gap(chaos):
    patient = chaos / "Train_Sets" / "CT" / "1"
    drop_slice(patient)
    with pytest.raises(data.DataError) as caught:
        data.read_chaos_case(patient)
    assert str(caught.value).startswith(
        f"{patient / 'DICOM_anon'}: slice positions are not evenly spaced: i0002,0000b.dcm to i0004,0000b.dcm "
        "steps 6 mm along the slice normal, the series' median step 3 mm")


def test_a_folder_of_two_series_or_two_patients_is_refused(chaos):
    cases = chaos / "Train_Sets" / "CT"
    add_series(cases / "1", cases / "2")
    with pytest.raises(data.DataError, match=rf"^{cases / '1' / 'DICOM_anon'}: holds 2 DICOM series "
                                             r"\(SeriesInstanceUID .+: 6 files from i0000,0000b.dcm; "
                                             r".+: 6 files from j0000.dcm\); expected one series per folder"):
        data.read_chaos_case(cases / "1")
    add_series(cases / "5", cases / "2", same_patient=False)
    with pytest.raises(data.DataError, match=rf"^{cases / '5' / 'DICOM_anon'}: holds DICOM files of 2 patients "
                                             r"\(PatientID ct-5: 6 files from IMG-0004-00001.dcm; ct-2: 6 files "
                                             r"from j0000.dcm\); expected one patient's series per folder"):
        data.read_chaos_case(cases / "5")


def test_check_and_prediction_apply_the_same_rule(chaos):
    cases = chaos / "Train_Sets" / "CT"
    drop_slice(cases / "1")
    add_series(cases / "5", cases / "2")
    report = data.check_dataset("chaos", chaos, progress=False)
    assert report.failing == ["1", "5"] and report.cases["case"].tolist() == ["2"]
    problems = dict(report.problems)
    assert "slice positions are not evenly spaced" in problems["1"] and "holds 2 DICOM series" in problems["5"]
    preprocessing = data.preprocessing_spec("chaos")
    for patient in ("1", "5"):
        (item,) = data.find_prediction_inputs(cases / patient / "DICOM_anon", preprocessing)
        with pytest.raises(data.DataError) as caught:
            data.read_prediction_input(item, preprocessing)
        assert str(caught.value) == problems[patient]


def test_the_sample_series_pass_the_rule(chaos):
    image, _, meta = data.read_chaos_case(chaos / "Train_Sets" / "CT" / "2")
    np.testing.assert_allclose(meta["spacing"][0], 3.0)
    assert image.shape[0] == 6
