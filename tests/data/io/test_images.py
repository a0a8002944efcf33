"""Image files by ending (`data.io.images`): every ending reads to one canonical array order and
geometry, and a prediction is written back in the geometry of its source."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import data
from data.io.images import read_image_file, write_like
from tests.data.io.writers import PLANAR_ENDINGS, SPACING_ZYX, VOLUME_ENDINGS, expected_affine, write_image


@pytest.mark.parametrize("ending", VOLUME_ENDINGS)
def test_every_volume_ending_reads_to_the_same_array_and_geometry(tmp_path, ending):
    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # (z, y, x), no symmetry
    path = write_image(tmp_path / f"volume{ending}", volume)
    array, geometry = read_image_file(path)
    assert array.shape == (1, 4, 5, 6) and array.dtype == np.float32
    np.testing.assert_array_equal(array[0], volume)
    np.testing.assert_allclose(geometry["spacing"], SPACING_ZYX, rtol=1e-6)
    np.testing.assert_allclose(geometry["affine"], expected_affine(), atol=1e-5)
    # the affine agrees with ITK's own index -> physical mapping (ITK indexes (x, y, z))
    itk = sitk.ReadImage(str(path))
    for index in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        physical = geometry["affine"] @ [*index, 1.0]
        np.testing.assert_allclose(physical[:3], itk.TransformIndexToPhysicalPoint(index[::-1]), atol=1e-4)


def test_a_nifti_case_converted_to_mha_and_nrrd_reads_the_same(tmp_path):
    original = write_image(tmp_path / "case.nii.gz", np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    reference = read_image_file(original)
    for ending in (".mha", ".nrrd"):
        converted = tmp_path / f"case{ending}"
        sitk.WriteImage(sitk.ReadImage(str(original)), str(converted))  # what a user's converter does
        array, geometry = read_image_file(converted)
        np.testing.assert_array_equal(array, reference[0])
        np.testing.assert_allclose(geometry["spacing"], reference[1]["spacing"], rtol=1e-6)
        np.testing.assert_allclose(geometry["affine"], reference[1]["affine"], atol=1e-5)


@pytest.mark.parametrize("ending", PLANAR_ENDINGS)
def test_every_2d_ending_reads_grey_and_colour_images_alike(tmp_path, ending):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    array, geometry = read_image_file(write_image(tmp_path / f"grey{ending}", grey))
    np.testing.assert_array_equal(array, grey[None])
    assert geometry["spacing"].tolist() == [1.0, 1.0] and geometry["shape"].tolist() == [5, 7]
    array, _ = read_image_file(write_image(tmp_path / f"colour{ending}", colour))
    np.testing.assert_array_equal(array, np.moveaxis(colour, -1, 0))


def test_2d_itk_files_read_like_2d_pictures(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7)
    path = tmp_path / "grey.mha"
    image = sitk.GetImageFromArray(grey)
    image.SetSpacing((0.5, 2.0))  # (x, y)
    image.SetOrigin((3.0, 4.0))
    sitk.WriteImage(image, str(path))
    array, geometry = read_image_file(path)
    np.testing.assert_array_equal(array, grey[None])
    assert geometry["spacing"].tolist() == [2.0, 0.5]
    # (0, row, column) -> (x, y, z): a row step moves 2 mm in y, a column step 0.5 mm in x
    np.testing.assert_allclose(geometry["affine"] @ [0, 1, 2, 1], [3.0 + 1.0, 4.0 + 2.0, 0.0, 1.0])


def test_tiff_variants_pil_reads_and_the_ones_it_refuses(tmp_path):
    values = np.linspace(-3, 7, 35, dtype=np.float32).reshape(5, 7)
    np.testing.assert_array_equal(read_image_file(write_image(tmp_path / "float.tif", values))[0][0], values)
    sixteen = (np.arange(35, dtype=np.uint16) * 1000).reshape(5, 7)
    np.testing.assert_array_equal(read_image_file(write_image(tmp_path / "u16.tif", sixteen))[0][0], sixteen)
    # 16-bit colour: PIL would silently read 8 bits
    colour = tmp_path / "rgb16.tif"
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([sixteen] * 3, -1), isVector=True), str(colour))
    with pytest.raises(data.DataError, match=rf"^{colour}: 16-bit colour TIFF"):
        read_image_file(colour)
    pages = tmp_path / "pages.tif"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 5, 7), np.uint8)), str(pages))
    with pytest.raises(data.DataError, match=rf"^{pages}: holds 3 pages; expected a 2D image"):
        read_image_file(pages)


@pytest.mark.parametrize("ending", VOLUME_ENDINGS + (".png", ".tif"))
def test_a_prediction_is_written_back_in_the_geometry_of_its_source(tmp_path, ending):
    planar = ending in PLANAR_ENDINGS
    shape = (5, 7) if planar else (3, 5, 7)
    reference = write_image(tmp_path / f"image{ending}", np.zeros(shape, np.uint8 if planar else np.float32))
    prediction = (np.arange(np.prod(shape)) % 3).reshape(shape)
    out = write_like(prediction, reference, tmp_path / "out" / f"prediction{ending}")
    array, geometry = read_image_file(out, None)
    np.testing.assert_array_equal(array[0], prediction)
    expected = read_image_file(reference)[1]
    np.testing.assert_allclose(geometry["affine"], expected["affine"], atol=1e-5)
    with pytest.raises(data.DataError, match="differs from the reference"):
        write_like(prediction[..., :-1], reference, tmp_path / f"bad{ending}")
