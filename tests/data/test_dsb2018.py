"""DSB2018: union of overlapping nucleus masks, RGBA -> RGB, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import data
from data.dsb2018 import read_dsb2018_image
from data.io.png import write_png


def write_case(root, name="abc123", shape=(12, 16), channels=4):
    case = root / "stage1_train" / name
    (case / "images").mkdir(parents=True)
    (case / "masks").mkdir()
    pixels = np.zeros(shape + (4,), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 3] = 200, 100, 255
    write_png(case / "images" / f"{name}.png", pixels if channels == 4 else pixels[..., 0])
    first = np.zeros(shape, np.uint8)
    first[2:6, 2:8] = 255
    second = np.zeros(shape, np.uint8)
    second[4:9, 6:12] = 255  # overlaps the first nucleus at rows 4-5, columns 6-7
    write_png(case / "masks" / "m1.png", first)
    write_png(case / "masks" / "m2.png", second)
    return case, (first > 0) | (second > 0)


def test_union_of_overlapping_masks_and_rgba_to_rgb(tmp_path):
    case, union = write_case(tmp_path)
    assert data.find_dsb2018_cases(tmp_path) == [case]
    image, label, meta = data.read_dsb2018_case(case)
    np.testing.assert_array_equal(label, union)
    assert image.shape == (3, 12, 16)
    np.testing.assert_allclose(image[:, 0, 0], [200 / 255, 100 / 255, 0])
    assert meta["original_shape"].tolist() == [12, 16]


def test_grey_images_become_three_equal_channels(tmp_path):
    case, _ = write_case(tmp_path, channels=1)
    image, _, _ = data.read_dsb2018_case(case)
    assert image.shape[0] == 3 and np.all(image[0] == image[1]) and np.all(image[1] == image[2])


def test_dataset_item_is_resized_rgb(tmp_path, monkeypatch):
    monkeypatch.setenv("LWNAS_CACHE", str(tmp_path / "cache"))
    for index in range(4):
        write_case(tmp_path / "root", name=f"case{index}")
    dataset = data.get_dataset("dsb2018", tmp_path / "root", split="train", image_size=8, augment=False)
    item = dataset[0]
    assert item["image"].shape == (3, 8, 8) and item["label"].shape == (1, 8, 8)
    assert item["meta"]["slice_index"] == -1
    restored = data.restore_original_size(item["label"][0].numpy(), item["meta"]["original_shape"])
    assert restored.shape == (12, 16)


def error(call):
    with pytest.raises(data.DataError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_mask_shape_mismatch(tmp_path):
    case, _ = write_case(tmp_path)
    write_png(case / "masks" / "m2.png", np.zeros((12, 15), np.uint8))
    assert error(lambda: data.read_dsb2018_case(case)).startswith(str(case / "masks" / "m2.png"))


def test_unknown_mask_values(tmp_path):
    case, _ = write_case(tmp_path)
    write_png(case / "masks" / "m1.png", np.full((12, 16), 128, np.uint8))
    message = error(lambda: data.read_dsb2018_case(case))
    assert message.startswith(str(case / "masks" / "m1.png")) and "unknown label values 128" in message


def test_missing_masks_and_image(tmp_path):
    case, _ = write_case(tmp_path)
    for mask in (case / "masks").glob("*.png"):
        mask.unlink()
    assert "no PNGs in masks/" in error(lambda: data.read_dsb2018_case(case))
    (case / "images" / f"{case.name}.png").unlink()
    assert "missing images/" in error(lambda: data.read_dsb2018_case(case))


def test_truncated_image(tmp_path):
    case, _ = write_case(tmp_path)
    path = case / "images" / f"{case.name}.png"
    path.write_bytes(path.read_bytes()[:40])
    assert error(lambda: data.read_dsb2018_case(case)).startswith(str(path))


def test_wrong_layout(tmp_path):
    (tmp_path / "stage1_train" / "x" / "pictures").mkdir(parents=True)
    assert "stage1_train/<id>/images/<id>.png" in error(lambda: data.find_dsb2018_cases(tmp_path))


def test_float_images_outside_0_1_are_refused_naming_the_file_and_range(tmp_path):
    """A float32 TIFF holding 0..255 would reach a network trained on [0, 1] unscaled. One rule
    for float pixels in training and prediction: kept as they are, refused outside [0, 1]."""
    ramp = np.linspace(0.0, 255.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    grey = tmp_path / "grey.tif"
    Image.fromarray(ramp).save(grey)
    colour = tmp_path / "colour.tif"
    sitk.WriteImage(sitk.GetImageFromArray(np.stack([ramp, ramp / 2, ramp / 4], -1), isVector=True), str(colour))
    preprocessing = data.preprocessing_spec("dsb2018")
    for path in (grey, colour):
        expected = (f"{path}: float32 pixels in 0..255; expected float pixels in [0, 1] (integer pixels are "
                    "divided by their type's maximum): rescale the image or save it with integer pixels")
        with pytest.raises(data.DataError) as caught:
            read_dsb2018_image(path)  # what the training cases are read with
        assert str(caught.value) == expected
        (item,) = data.find_prediction_inputs(path, preprocessing)
        with pytest.raises(data.DataError) as caught:
            data.read_prediction_input(item, preprocessing)
        assert str(caught.value) == expected
    unit = tmp_path / "unit.tif"
    Image.fromarray(ramp / 255).save(unit)
    np.testing.assert_array_equal(read_dsb2018_image(unit), np.repeat((ramp / 255)[None], 3, axis=0))
