"""BraTS: every release layout read from tiny files, labels, and every bad input."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

import data
from data.sample.brats import write_brats

SHAPE = (12, 14, 10)


def write(tmp_path, year, cases=2, first_case=1):
    return write_brats(tmp_path / f"brats{year}", year=year, cases=cases, shape=SHAPE, first_case=first_case)


@pytest.mark.parametrize("year, names", [
    ("2018", ["Brats18_TCIA01_101_1", "Brats18_TCIA01_102_1"]),
    ("2019", ["BraTS19_TCIA01_101_1", "BraTS19_TCIA01_102_1"]),
    ("2021", ["BraTS2021_00001", "BraTS2021_00002"]),
    ("2023", ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]),
])
def test_each_layout_is_found_and_read(tmp_path, year, names):
    root = write(tmp_path, year)
    cases = data.find_brats_cases(root)
    assert [case.name for case in cases] == names
    if year in ("2018", "2019"):
        assert {case.parent.name for case in cases} == {"HGG", "LGG"}
    image, label, meta = data.read_brats_case(cases[0], normalise=False)
    assert image.shape == (4, *SHAPE) and image.dtype == np.float32
    assert label.shape == SHAPE and label.dtype == np.uint8
    # 2023 stores ET as 3; every layout comes out as 0/1/2/4.
    assert set(np.unique(label)) == {0, 1, 2, 4}
    assert meta["layout"] == year
    assert meta["original_shape"].tolist() == list(SHAPE)
    np.testing.assert_allclose(meta["spacing"], [1, 1, 1])


def test_modalities_are_stacked_in_fixed_order_whatever_the_release(tmp_path):
    """Channel c must be flair, t1, t1ce, t2; 2023's t2f, t1n, t1c, t2w map onto them."""
    for year in ("2021", "2023"):
        case = data.find_brats_cases(write(tmp_path, year, cases=1))[0]
        image, _, _ = data.read_brats_case(case, normalise=False)
        files, _ = data.brats_case_files(case)
        suffixes = [f.name.split(case.name)[1] for f in files]
        expected = {"2021": ["_flair", "_t1", "_t1ce", "_t2"], "2023": ["-t2f", "-t1n", "-t1c", "-t2w"]}[year]
        assert [s.split(".")[0] for s in suffixes] == expected
        for channel, path in enumerate(files):
            np.testing.assert_array_equal(image[channel], np.asarray(nib.load(path).dataobj, np.float32))


def test_2023_enhancing_label_3_becomes_4(tmp_path):
    case = data.find_brats_cases(write(tmp_path, "2023", cases=1))[0]
    stored = np.asarray(nib.load(case / f"{case.name}-seg.nii.gz").dataobj)
    assert 3 in stored and 4 not in stored
    _, label, _ = data.read_brats_case(case)
    np.testing.assert_array_equal(label == 4, stored == 3)


def test_2020_flat_layout_with_the_misnamed_case_355(tmp_path):
    root = write(tmp_path, "2020", cases=3, first_case=354)
    cases = data.find_brats_cases(root)
    assert [c.name for c in cases] == ["BraTS20_Training_354", "BraTS20_Training_355", "BraTS20_Training_356"]
    misnamed = cases[1] / "W39_1998.09.19_Segm.nii"
    assert misnamed.is_file() and not list(cases[1].glob("*_seg.nii*"))
    _, label, _ = data.read_brats_case(cases[1], require_label=True)
    np.testing.assert_array_equal(label, np.asarray(nib.load(misnamed).dataobj))


def test_zscore_on_nonzero_voxels_keeps_background_zero(tmp_path):
    case = data.find_brats_cases(write(tmp_path, "2021", cases=1))[0]
    raw, _, _ = data.read_brats_case(case, normalise=False)
    image, _, _ = data.read_brats_case(case)
    for channel in range(4):
        brain = raw[channel] != 0
        assert np.all(image[channel][~brain] == 0)
        assert abs(image[channel][brain].mean()) < 1e-4 and abs(image[channel][brain].std() - 1) < 1e-3


def test_label_conversions_round_trip():
    labels = np.array([0, 1, 2, 4, 4, 2])
    regions = data.brats_labels_to_regions(labels)
    np.testing.assert_array_equal(regions, [[0, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0], [0, 0, 0, 1, 1, 0]])
    np.testing.assert_array_equal(data.brats_regions_to_labels(regions), labels)
    index = data.brats_labels_to_index(labels)
    np.testing.assert_array_equal(index, [0, 1, 2, 3, 3, 2])
    np.testing.assert_array_equal(data.brats_index_to_labels(index), labels)


def test_write_nifti_like_keeps_the_reference_geometry(tmp_path):
    case = data.find_brats_cases(write(tmp_path, "2021", cases=1))[0]
    _, label, meta = data.read_brats_case(case)
    out = data.write_nifti_like(label.astype(np.int64), meta["source"], tmp_path / "pred.nii.gz")
    written = nib.load(out)
    reference = nib.load(meta["source"])
    np.testing.assert_array_equal(written.affine, reference.affine)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(written.dataobj), label)
    with pytest.raises(data.DataError, match="pred2.nii.gz.*shape"):
        data.write_nifti_like(label[:-1], meta["source"], tmp_path / "pred2.nii.gz")


def test_test_time_case_without_segmentation_reads_with_label_none(tmp_path):
    case = data.find_brats_cases(write(tmp_path, "2021", cases=1))[0]
    (case / f"{case.name}_seg.nii.gz").unlink()
    image, label, _ = data.read_brats_case(case)
    assert label is None and image.shape[0] == 4
    with pytest.raises(data.DataError, match=f"{case.name}: missing segmentation"):
        data.read_brats_case(case, require_label=True)


# ---- bad input: each gives a one-line DataError naming the file ----

def _case(tmp_path):
    return data.find_brats_cases(write(tmp_path, "2021", cases=1))[0]


def _rewrite(path, array, zooms=None):
    image = nib.load(path)
    header = image.header.copy()
    if zooms is not None:
        header.set_zooms(zooms)
    nib.save(nib.Nifti1Image(array, image.affine, header), str(path))


def assert_one_line_error(call, *fragments):
    with pytest.raises(data.DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_modality(tmp_path):
    case = _case(tmp_path)
    (case / f"{case.name}_t1ce.nii.gz").unlink()
    assert_one_line_error(lambda: data.read_brats_case(case), str(case), "missing modality t1ce",
                          f"{case.name}_t1ce.nii.gz")


def test_shape_mismatch(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_t2.nii.gz"
    _rewrite(path, np.zeros((12, 14, 9), np.int16))
    message = assert_one_line_error(lambda: data.read_brats_case(case), str(path), "shape 12x14x9")
    assert message.startswith(str(path))


def test_label_shape_mismatch(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_seg.nii.gz"
    _rewrite(path, np.zeros((11, 14, 10), np.uint8))
    assert_one_line_error(lambda: data.read_brats_case(case), str(path), "one grid")


def test_spacing_mismatch(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_t1.nii.gz"
    _rewrite(path, np.asarray(nib.load(path).dataobj), zooms=(1.0, 1.0, 2.0))
    assert_one_line_error(lambda: data.read_brats_case(case), str(path), "spacing 1x1x2 mm")


def _moved(path, shift=(0.0, 0.0, 0.0), flip_axis=None):
    """Rewrite `path` with its origin moved by `shift` mm, or one voxel axis mirrored."""
    image = nib.load(path)
    affine = image.affine.copy()
    affine[:3, 3] += shift
    if flip_axis is not None:
        affine[:3, flip_axis] *= -1
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), affine), str(path))


def test_modalities_and_segmentation_off_the_first_modality_grid(tmp_path):
    """Channels of one case on different grids (nnU-Net's check: origin, direction and spacing
    against the first channel's) are refused in training, `lwnas check` and prediction alike."""
    root = write(tmp_path, "2021", cases=3)
    cases = data.find_brats_cases(root)
    shifted = cases[0] / f"{cases[0].name}_t1.nii.gz"
    _moved(shifted, shift=(100.0, 0.0, 0.0))
    mirrored = cases[1] / f"{cases[1].name}_seg.nii.gz"
    _moved(mirrored, flip_axis=2)
    expected = {
        cases[0].name: f"{shifted}: origin differs from {cases[0].name}_flair.nii.gz's by 100 mm; expected all "
                       "modalities and the segmentation on one grid",
        cases[1].name: f"{mirrored}: direction differs from {cases[1].name}_flair.nii.gz's (an axis turned by 180°); "
                       "expected all modalities and the segmentation on one grid",
    }
    report = data.check_dataset("brats", root, progress=False)
    assert dict(report.problems) == expected and report.cases["case"].tolist() == [cases[2].name]
    assert_one_line_error(lambda: data.read_brats_case(cases[0], read_label=False), expected[cases[0].name])
    _, _, meta = data.read_brats_case(cases[1], read_label=False)  # prediction reads the label apart
    assert_one_line_error(lambda: data.read_brats_label(cases[1], meta), expected[cases[1].name])


def test_unknown_label_values(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_seg.nii.gz"
    labels = np.asarray(nib.load(path).dataobj).copy()
    labels[0, 0, 0] = 3  # 3 is not a label before 2023
    _rewrite(path, labels)
    assert_one_line_error(lambda: data.read_brats_case(case), str(path), "unknown label values 3",
                          "expected 0, 1, 2, 4")


def test_truncated_file(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_flair.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    assert_one_line_error(lambda: data.read_brats_case(case), str(path), "truncated")


def test_unreadable_file(tmp_path):
    case = _case(tmp_path)
    path = case / f"{case.name}_flair.nii.gz"
    path.write_bytes(b"not a nifti file")
    assert_one_line_error(lambda: data.read_brats_case(case), str(path), "unreadable")


def test_empty_data_root(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(lambda: data.find_brats_cases(tmp_path / "empty"), str(tmp_path / "empty"), "empty")


def test_missing_data_root(tmp_path):
    assert_one_line_error(lambda: data.find_brats_cases(tmp_path / "nowhere"), "does not exist")


def test_wrong_layout_lists_the_layouts_looked_for(tmp_path):
    folder = tmp_path / "root" / "patient_1"
    folder.mkdir(parents=True)
    shutil.copy(_case(tmp_path) / "BraTS2021_00001_t1.nii.gz", folder / "t1.nii.gz")
    message = assert_one_line_error(lambda: data.find_brats_cases(tmp_path / "root"), "no BraTS case folders")
    for year in ("2018", "2019", "2020", "2021", "2023"):
        assert f"{year}:" in message


def test_mixed_releases_are_refused(tmp_path):
    write_brats(tmp_path / "mixed", year="2021", cases=1, shape=SHAPE)
    write_brats(tmp_path / "mixed", year="2020", cases=1, shape=SHAPE)
    assert_one_line_error(lambda: data.find_brats_cases(tmp_path / "mixed"), "several BraTS layouts (2020, 2021)")


def test_brats_regions_of_a_toy_array() -> None:
    labels = np.array([0, 1, 2, 4, 4, 2])
    regions = data.brats_regions(labels)
    assert regions["WT"].tolist() == [False, True, True, True, True, True]
    assert regions["TC"].tolist() == [False, True, False, True, True, False]
    assert regions["ET"].tolist() == [False, False, False, True, True, False]
    regions_2023 = data.brats_regions(np.array([0, 1, 2, 3]), enhancing_label=3)
    assert regions_2023["ET"].tolist() == [False, False, False, True]
    assert regions_2023["TC"].tolist() == [False, True, False, True]
    assert list(data.BRATS_REGIONS) == list(regions) == ["WT", "TC", "ET"]
