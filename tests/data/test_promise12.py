"""PROMISE12: flat and TrainingData_Part layouts, SimpleITK preprocessing, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import data
from data.sample.promise12 import write_promise12

SHAPE = (6, 24, 24)  # z, y, x


def root_with(tmp_path, parts=False, cases=3):
    return write_promise12(tmp_path / "promise12", cases=cases, shape_zyx=SHAPE, parts=parts)


@pytest.mark.parametrize("parts", [False, True])
def test_flat_and_part_folders(tmp_path, parts):
    root = root_with(tmp_path, parts=parts)
    cases = data.find_promise12_cases(root)
    assert [c.stem for c in cases] == ["Case00", "Case01", "Case02"]
    if parts:
        assert {c.parent.name for c in cases} == {"TrainingData_Part1", "TrainingData_Part2", "TrainingData_Part3"}
    image, label, meta = data.read_promise12_case(cases[0])
    assert image.shape == label.shape == SHAPE
    assert set(np.unique(label)) == {0, 1}
    np.testing.assert_allclose(meta["spacing"], [3.6, 0.625, 0.625])


def test_preprocessing_denoises_and_resamples_in_plane(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    raw, raw_label, _ = data.read_promise12_case(case)
    image, label, meta = data.preprocess_promise12_case(case, image_size=48, denoise=False)
    smooth, _, _ = data.preprocess_promise12_case(case, image_size=48, denoise=True)
    assert image.shape == label.shape == (SHAPE[0], 48, 48)
    assert 0 <= image.min() and image.max() <= 1
    # In-plane resampling only: same slices, half the pixel size, same extent.
    np.testing.assert_allclose(meta["spacing"], [3.6, 0.3125, 0.3125])
    assert meta["original_shape"].tolist() == list(SHAPE)
    np.testing.assert_array_equal(label[:, ::2, ::2].sum((1, 2)) > 0, raw_label.sum((1, 2)) > 0)
    # Denoising lowers the pixel-to-pixel variation.
    assert np.abs(np.diff(smooth, axis=2)).mean() < np.abs(np.diff(image, axis=2)).mean()
    # The item's affine maps pixel centres onto the same physical extent.
    first = meta["affine"] @ [0, 0, 0, 1]
    assert first[0] == pytest.approx(-25.0 - 0.625 / 2 + 0.3125 / 2)


def error(call):
    with pytest.raises(data.DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_segmentation(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    (tmp_path / "promise12" / "Case00_segmentation.mhd").unlink()
    message = error(lambda: data.read_promise12_case(case))
    assert message.startswith(str(case)) and "Case00_segmentation.mhd" in message


def _rewrite_label(tmp_path, array, spacing=(0.625, 0.625, 3.6)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    path = tmp_path / "promise12" / "Case00_segmentation.mhd"
    sitk.WriteImage(image, str(path))
    return path


def test_size_mismatch(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    path = _rewrite_label(tmp_path, np.zeros((6, 24, 20), np.uint8))
    message = error(lambda: data.read_promise12_case(case))
    assert message.startswith(str(path)) and "size (20, 24, 6)" in message


def test_spacing_mismatch(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    path = _rewrite_label(tmp_path, np.zeros(SHAPE, np.uint8), spacing=(0.625, 0.625, 3.0))
    assert error(lambda: data.read_promise12_case(case)).startswith(str(path))


def test_unknown_label_values(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    labels = np.zeros(SHAPE, np.uint8)
    labels[2, 5, 5] = 2
    path = _rewrite_label(tmp_path, labels)
    message = error(lambda: data.preprocess_promise12_case(case, 32))
    assert message.startswith(str(path)) and "unknown label values 2" in message


def test_truncated_raw(tmp_path):
    case = data.find_promise12_cases(root_with(tmp_path))[0]
    raw = case.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:100])
    message = error(lambda: data.read_promise12_case(case))
    assert message.startswith(str(case)) and "truncated" in message


def test_wrong_layout_and_empty_root(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "empty" in error(lambda: data.find_promise12_cases(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "scan.nii.gz").write_bytes(b"")
    assert "CaseNN.mhd" in error(lambda: data.find_promise12_cases(tmp_path / "other"))
