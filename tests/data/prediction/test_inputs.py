"""New images for a trained 2D network (data.prediction.inputs): found in each layout, preprocessed
into exactly the training items (the readers' own functions, the same options), and predictions
written back in the input's geometry: a stub prediction equal to the data set's own labels must
come back as those label files."""
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import data
from data.interfaces import PredictionInput
from tests.data.io.writers import ORIGIN, write_image
from tests.data.nnunet.writers import synthetic_case, write_nnunet_v2


def _training_items(name, root=None, **options):
    """(dataset, preprocessing, label map) of the training split, and its items of one case."""
    dataset = data.get_dataset(name, root, split="train", augment=False, **options)
    preprocessing, labels = data.describe_dataset(dataset)
    return dataset, preprocessing, labels


def _served(dataset, case):
    return np.stack([dataset[i]["image"].numpy() for i, (c, _) in enumerate(dataset.items) if c == case])


def _item(items, case):
    (item,) = [item for item in items if item.case == case]
    return item


@pytest.mark.parametrize("name, folder, options", [
    ("dsb2018", "stage1_train", {}),
    ("chaos", "Train_Sets/CT", {}),
    ("chaos", "Train_Sets/MR", {"modality": "MR"}),
    ("promise12", ".", {}),
    ("nnunet", "imagesTr", {}),
])
def test_prediction_stacks_are_the_training_items(name, folder, options):
    dataset, preprocessing, labels = _training_items(name, **options)
    items = data.find_prediction_inputs(dataset.root / folder, preprocessing)
    for case in dataset.cases[:2]:
        stack, meta = data.read_prediction_input(_item(items, case), preprocessing)
        assert np.array_equal(stack, _served(dataset, case))  # the same functions, the same options
        assert stack.dtype == np.float32 and stack.shape[1] == dataset.in_channels


def test_nnunet_png_images_are_the_training_items(tmp_path):
    root = data.write_sample("nnunet", tmp_path / "png", variant="png")
    dataset, preprocessing, _ = _training_items("nnunet", root)
    assert preprocessing["file_ending"] == ".png" and preprocessing["slice_axis"] is None
    items = data.find_prediction_inputs(root / "imagesTr", preprocessing)
    case = dataset.cases[0]
    stack, meta = data.read_prediction_input(_item(items, case), preprocessing)
    assert np.array_equal(stack, _served(dataset, case)) and meta["served_shape"] == [1, 48, 48]


def _stub_written(item, preprocessing, labels, out):
    """Write the case's own truth as its prediction (a stub network with known output)."""
    stack, meta = data.read_prediction_input(item, preprocessing)
    truth = data.read_prediction_label(item, preprocessing, labels, meta)
    served_order = np.zeros(meta["served_shape"], np.uint8)
    assert truth is not None and truth.shape == data.in_output_order(served_order, meta).shape
    served = truth[None] if meta["to_output"] == "first" else truth
    if meta["to_output"] == "axes":  # the written order back to the served (slice first) order
        served = np.transpose(truth, meta["axes"])
    assert np.array_equal(data.in_output_order(served, meta), truth)
    return data.write_prediction(served, item, meta, labels, out), truth, meta


def test_dsb2018_masks_come_back_as_255_pngs_of_the_image_size(tmp_path):
    dataset, preprocessing, labels = _training_items("dsb2018")
    case = dataset.root / "stage1_train" / dataset.cases[0]
    (item,) = data.find_prediction_inputs(case, preprocessing)  # a case folder alone
    path, truth, _ = _stub_written(item, preprocessing, labels, tmp_path)
    written = np.asarray(Image.open(path))
    assert path.name == f"{case.name}.png" and written.shape == truth.shape
    assert np.array_equal(written, data.read_dsb2018_case(case)[1] * 255)


def test_a_dicom_series_comes_back_as_nifti_in_its_geometry(tmp_path):
    dataset, preprocessing, labels = _training_items("chaos")
    patient = data.find_chaos_cases(dataset.root)[1]
    (item,) = data.find_prediction_inputs(patient / "DICOM_anon", preprocessing)  # its series folder
    assert item.case == patient.name and item.label == patient / "Ground"
    path, truth, meta = _stub_written(item, preprocessing, labels, tmp_path)
    image, expected_truth, geometry = data.read_chaos_case(patient)
    array, read = data.read_image_file(path, dtype=None)
    assert np.array_equal(array[0], expected_truth)
    np.testing.assert_allclose(read["affine"], geometry["affine"], atol=1e-6)
    header = nib.load(path).header
    assert int(header["qform_code"]) == int(header["sform_code"]) == 1
    world = nib.load(path).affine @ np.array([3, 5, 2, 1.0])  # voxel (i, j, k) = index (2, 5, 3), RAS
    lps = geometry["affine"] @ np.array([2, 5, 3, 1.0])
    np.testing.assert_allclose(world[:3], lps[:3] * [-1, -1, 1], atol=1e-6)


@pytest.mark.parametrize("ending", [".mhd", ".nii.gz", ".mha", ".nrrd"])
def test_volumes_come_back_in_their_format_and_geometry(tmp_path, ending):
    dataset, preprocessing, labels = _training_items("promise12")
    source = dataset.root / f"{dataset.cases[0]}.mhd"
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, segmentation = sitk.ReadImage(str(source)), sitk.ReadImage(str(source.with_name(f"{source.stem}"
                                                                                           "_segmentation.mhd")))
    image.SetOrigin((1.5, -2.0, 30.0))
    segmentation.CopyInformation(image)
    sitk.WriteImage(image, str(inputs / f"case{ending}"))
    sitk.WriteImage(segmentation, str(inputs / f"case_segmentation{ending}"))
    (item,) = data.find_prediction_inputs(inputs, preprocessing)  # the segmentation is no input
    assert item.label == inputs / f"case_segmentation{ending}" and item.output == f"case{ending}"
    path, truth, _ = _stub_written(item, preprocessing, labels, tmp_path / "out")
    written = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(segmentation))
    for getter in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        np.testing.assert_allclose(getattr(written, getter)(), getattr(image, getter)(), atol=1e-5)


def test_nnunet_images_ts_group_channel_files_and_come_back_like_the_labels(tmp_path):
    dataset, preprocessing, labels = _training_items("nnunet")
    task = tmp_path / "task"
    shutil.copytree(dataset.root / "imagesTs", task / "imagesTs")
    case = dataset.cases[0]
    for file in (dataset.root / "imagesTr").glob(f"{case}_*"):
        shutil.copy(file, task / "imagesTs" / file.name)
    (task / "labelsTs").mkdir()
    shutil.copy(dataset.root / "labelsTr" / f"{case}.nii.gz", task / "labelsTs" / f"{case}.nii.gz")
    items = data.find_prediction_inputs(task, preprocessing)
    assert [item.case for item in items] == sorted([case, "abdomen_009", "abdomen_010"])
    item = _item(items, case)
    assert [f.name for f in item.files] == [f"{case}_0000.nii.gz", f"{case}_0001.nii.gz"]
    assert [i.label for i in items if i.case != case] == [None, None]
    path, truth, meta = _stub_written(item, preprocessing, labels, tmp_path / "out")
    written, reference = nib.load(path), nib.load(dataset.root / "labelsTr" / f"{case}.nii.gz")
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(reference.dataobj))
    assert np.array_equal(written.affine, nib.load(item.files[0]).affine)
    (one,) = data.find_prediction_inputs(item.files[1], preprocessing)  # a channel file: its case
    assert one.files == item.files
    training = data.find_prediction_inputs(dataset.root / "imagesTr", preprocessing)
    assert all(i.label == dataset.root / "labelsTr" / f"{i.case}.nii.gz" for i in training)


def test_nnunet_channels_and_label_on_another_grid_are_refused_naming_both_files(tmp_path):
    root = write_nnunet_v2(tmp_path / "d", {"case_00": synthetic_case(0)}, channels=("T1", "T2"))
    image, label = synthetic_case(1)
    first = write_image(root / "imagesTs" / "new_0000.nii.gz", image[0])
    shifted = write_image(root / "imagesTs" / "new_0001.nii.gz", image[1], origin=(ORIGIN[0] + 100.0, *ORIGIN[1:]))
    preprocessing = data.preprocessing_spec("nnunet", root, image_size=16)
    (item,) = data.find_prediction_inputs(root / "imagesTs", preprocessing)
    with pytest.raises(data.DataError) as caught:
        data.read_prediction_input(item, preprocessing)
    assert str(caught.value) == (f"{shifted}: origin differs from {first.name}'s by 100 mm; expected every "
                                 "channel and the label on one grid")
    write_image(shifted, image[1])
    truth = write_image(root / "labelsTs" / "new.nii.gz", label, origin=(ORIGIN[0], ORIGIN[1] + 100.0, ORIGIN[2]))
    (item,) = data.find_prediction_inputs(root / "imagesTs", preprocessing)
    _, meta = data.read_prediction_input(item, preprocessing)
    labels = data.label_spec("nnunet", root)
    with pytest.raises(data.DataError) as caught:
        data.read_prediction_label(item, preprocessing, labels, meta)
    assert str(caught.value) == (f"{truth}: origin differs from {first.name}'s by 100 mm; expected every "
                                 "channel and the label on one grid")


def test_probability_maps_are_float_files_in_the_input_geometry(tmp_path):
    dataset, preprocessing, labels = _training_items("dsb2018")
    (item,) = data.find_prediction_inputs(dataset.root / "stage1_train" / dataset.cases[0], preprocessing)
    _, meta = data.read_prediction_input(item, preprocessing)
    maps = np.random.default_rng(0).random((1, *meta["served_shape"])).astype(np.float32)
    (path,) = data.write_probabilities(maps, item, meta, labels, tmp_path)
    assert path.name == f"{item.case}_prob_nucleus.tif"
    assert np.array_equal(np.asarray(Image.open(path)), maps[0, 0])


def test_discovery_of_each_layout(tmp_path):
    _, dsb, _ = _training_items("dsb2018")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.tif", "c.bmp", "._a.png", "notes.txt"):
        Image.fromarray(np.zeros((4, 5), np.uint8)).save(images / name, format="PNG" if name.endswith("txt") else None)
    assert [(i.case, i.output) for i in data.find_prediction_inputs(images, dsb)] == [
        ("a", "a.tif"), ("b", "b.png"), ("c", "c.bmp")]
    tree = tmp_path / "dsb" / "stage1_test"
    for case in data.find_dsb2018_cases(data.sample_root("dsb2018"))[:2]:
        shutil.copytree(case / "images", tree / case.name / "images")  # no masks: nothing to score
    found = data.find_prediction_inputs(tmp_path / "dsb", dsb)
    assert len(found) == 2 and all(item.label is None for item in found)
    _, chaos, _ = _training_items("chaos")
    patients = data.find_prediction_inputs(data.sample_root("chaos"), chaos)
    assert [item.case for item in patients] == ["1", "2", "5", "6", "8", "10"]
    assert all(item.label is not None and item.output == f"{item.case}.nii.gz" for item in patients)


def test_what_is_not_there_is_one_line_naming_the_path(tmp_path):
    _, dsb, _ = _training_items("dsb2018")
    with pytest.raises(data.DataError) as error:
        data.find_prediction_inputs(tmp_path, dsb)
    assert str(error.value) == (f"{tmp_path}: no input for a dsb2018 network found; looked for PNG/TIFF/BMP files, "
                                "or a DSB2018 tree <id>/images/<id>.png")
    with pytest.raises(data.DataError, match="no such file or folder"):
        data.find_prediction_inputs(tmp_path / "missing", dsb)
    _, nnunet, _ = _training_items("nnunet")
    (tmp_path / "imagesTs").mkdir()
    shutil.copy(next((data.sample_root("nnunet") / "imagesTs").glob("*_0001.nii.gz")), tmp_path / "imagesTs")
    (item,) = data.find_prediction_inputs(tmp_path, nnunet)
    with pytest.raises(data.DataError) as error:
        data.read_prediction_input(item, nnunet)
    assert str(error.value).startswith(f"{tmp_path / 'imagesTs' / (item.case + '_0000.nii.gz')}: missing channel "
                                       f"file 0 of case {item.case}")
    bad = PredictionInput("x", (tmp_path / "x.png",), "x.png")
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(data.DataError, match=r"x\.png: unreadable or truncated PNG"):
        data.read_prediction_input(bad, dsb)
    _, brats, _ = _training_items("brats")
    with pytest.raises(ValueError, match="networks trained on brats take no 2D image inputs"):
        data.find_prediction_inputs(tmp_path, brats)
