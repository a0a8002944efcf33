"""``lwnas predict`` with 2D networks: genotype networks retrained for one epoch on the sample data
predict new inputs of every format (PNG/TIFF folder, DSB2018 tree, DICOM series, MetaImage, NIfTI
and NRRD volumes, nnU-Net imagesTs); each output has its input's size and geometry, holds allowed
label values only, and equals the network's own forward on the training pipeline's preprocessing
(the cached training items), resampled back; labels beside the inputs are scored."""
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from PIL import Image

import data
from nas import cli
from nas import run as commands
from nas.metrics import evaluate_case
from nas.run.networks import load_network, read_spec
from tests.runs import SIZE, untrained_genotype_checkpoint

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow

#: probabilities this close to the threshold may round either way on another CPU
MARGIN = 1e-4
HEADER_FIELDS = ("dim", "pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z",
                 "quatern_b", "quatern_c", "quatern_d", "xyzt_units")


@pytest.fixture(scope="module")
def dsb(retrained_2d):
    return retrained_2d("dsb2018")


@pytest.fixture(scope="module")
def chaos(retrained_2d):
    return retrained_2d("chaos")


@pytest.fixture(scope="module")
def promise12(retrained_2d):
    return retrained_2d("promise12")


@pytest.fixture(scope="module")
def nnunet(tmp_path_factory, make_genotype):
    """An nnU-Net network (CT + PET in, background/liver/spleen softmax out); untrained: only its
    own forward is compared, never its Dice."""
    path = tmp_path_factory.mktemp("nnunet") / "best.pt"
    return untrained_genotype_checkpoint(path, make_genotype(in_channels=2, num_classes=3), "nnunet")


def _served(run, dataset, case):
    """The training pipeline's network inputs (S, C, h, w) of a case of the run's splits."""
    for split in ("train", "val", "test"):
        items = data.get_dataset(dataset, split=split, splits_file=run / "splits.json", augment=False,
                                 image_size=SIZE)
        if case in items.cases:
            return torch.stack([items[i]["image"] for i, (c, _) in enumerate(items.items) if c == case])
    raise AssertionError(f"{case} is in no split")


def _expected(network, images, activation, shape):
    """The network's probabilities (S, K, H0, W0) on ``images``, resampled to the input's size."""
    with torch.no_grad():
        logits = network(images.float())
    probabilities = torch.sigmoid(logits) if activation == "sigmoid" else logits.softmax(1)
    return F.interpolate(probabilities, size=tuple(shape[-2:]), mode="bilinear", align_corners=False).numpy()


def _agree(labels, foreground_probability, foreground):
    """Labels are the thresholded probabilities, wherever the probability is not a rounding from 0.5."""
    decided = np.abs(foreground_probability - 0.5) > MARGIN
    assert decided.mean() > 0.9
    assert np.array_equal((labels == foreground)[decided], (foreground_probability > 0.5)[decided])


def _copy_dsb_cases(target, count=3):
    cases = data.find_dsb2018_cases(data.sample_root("dsb2018"))[:count]
    for case in cases:
        shutil.copytree(case, target / case.name)
    return cases


def test_a_dsb2018_tree_is_predicted_at_each_image_size_like_the_network_and_scored(dsb, tmp_path):
    network, spec = load_network(dsb / "best.pt")
    cases = _copy_dsb_cases(tmp_path / "in" / "stage1_test")
    out = tmp_path / "out"
    report = commands.predict_images(dsb / "best.pt", tmp_path / "in", out, device="cpu", probabilities=True,
                                     progress=False)
    assert report.failures == [] and report.unscored == []
    assert report.predictions == [out / f"{case.name}.png" for case in cases]
    table = pd.read_csv(out / "metrics_cases.csv").set_index("case")
    for case in cases:
        image = np.asarray(Image.open(case / "images" / f"{case.name}.png"))
        mask = np.asarray(Image.open(out / f"{case.name}.png"))
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        probability = np.asarray(Image.open(out / f"{case.name}_prob_nucleus.tif"))
        expected = _expected(network, _served(dsb, "dsb2018", case.name), "sigmoid", image.shape[:2])[0, 0]
        np.testing.assert_allclose(probability, expected, atol=1e-5)
        _agree(mask, probability, 255)
        truth = data.read_dsb2018_case(case)[1]
        scores = evaluate_case(mask > 0, truth, metrics=("dice", "iou", "hd95"))
        for key, value in scores.items():
            assert table.loc[case.name, key] == pytest.approx(value)
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_a_folder_of_new_png_and_tiff_images_of_any_size_and_colour(dsb, tmp_path):
    network, _ = load_network(dsb / "best.pt")
    case = data.find_dsb2018_cases(data.sample_root("dsb2018"))[1]
    pixels = np.asarray(Image.open(case / "images" / f"{case.name}.png"))[:70, :53]  # RGBA, a new size
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(pixels).save(inputs / "cells.png")
    Image.fromarray(pixels[..., :3]).save(inputs / "cells_rgb.tif")
    Image.fromarray(pixels[..., 1]).save(inputs / "grey.png")
    # the training pipeline's input for these pixels: the same image as a DSB2018 case
    as_case = tmp_path / "case" / "cells"
    (as_case / "images").mkdir(parents=True)
    (as_case / "masks").mkdir()
    Image.fromarray(pixels).save(as_case / "images" / "cells.png")
    Image.fromarray(np.zeros(pixels.shape[:2], np.uint8)).save(as_case / "masks" / "empty.png")
    image, _, _ = data.preprocess_dsb2018_case(as_case, SIZE)

    out = tmp_path / "out"
    assert cli.main(["predict", "--checkpoint", str(dsb / "best.pt"), "--input", str(inputs), "--output",
                     str(out), "--device", "cpu", "--probabilities", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*")) == [
        "cells.png", "cells_prob_nucleus.tif", "cells_rgb.tif", "cells_rgb_prob_nucleus.tif", "grey.png",
        "grey_prob_nucleus.tif", "predictions.json"]  # no labels beside the images: no metrics tables
    expected = _expected(network, torch.from_numpy(image)[None], "sigmoid", (70, 53))[0, 0]
    for name in ("cells", "cells_rgb"):  # RGBA and RGB of the same pixels: the same prediction
        mask = np.asarray(Image.open(out / f"{name}{'.png' if name == 'cells' else '.tif'}"))
        assert mask.shape == (70, 53) and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_allclose(np.asarray(Image.open(out / f"{name}_prob_nucleus.tif")), expected, atol=1e-5)
    grey = np.asarray(Image.open(out / "grey.png"))
    assert grey.shape == (70, 53) and set(np.unique(grey)) <= {0, 255}


def test_tta_and_batch_size(dsb, tmp_path):
    network, _ = load_network(dsb / "best.pt")
    case = _copy_dsb_cases(tmp_path / "in", count=1)[0]
    images = _served(dsb, "dsb2018", case.name)
    shape = np.asarray(Image.open(case / "images" / f"{case.name}.png")).shape[:2]
    commands.predict_images(dsb / "best.pt", tmp_path / "in", tmp_path / "tta", device="cpu", tta=True,
                            probabilities=True, batch_size=1, progress=False)
    flips = [(), (2,), (3,), (2, 3)]
    with torch.no_grad():
        mean = sum(torch.sigmoid(network(images.flip(dims))).flip(dims) for dims in flips) / 4
    expected = F.interpolate(mean, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    plain = _expected(network, images, "sigmoid", shape)[0, 0]
    assert np.abs(expected - plain).max() > 1e-4  # the flips change this network's answer (10 x the tolerance)
    written = np.asarray(Image.open(tmp_path / "tta" / f"{case.name}_prob_nucleus.tif"))
    np.testing.assert_allclose(written, expected, atol=1e-5)


def test_a_dicom_series_gets_a_nifti_mask_in_the_series_geometry(chaos, tmp_path):
    network, spec = load_network(chaos / "best.pt")
    patient = data.find_chaos_cases(data.sample_root("chaos"))[1]  # its z decreases with the file index
    image, truth, meta = data.read_chaos_case(patient)
    assert meta["affine"][2, 0] < 0
    inputs = tmp_path / "in"
    shutil.copytree(patient, inputs / patient.name)  # a patient folder: DICOM_anon/ and Ground/
    shutil.copytree(patient / "DICOM_anon", inputs / "series")  # a bare series folder
    out = tmp_path / "out"
    report = commands.predict_images(chaos / "best.pt", inputs / patient.name, out, device="cpu",
                                     probabilities=True, progress=False)
    bare = commands.predict_images(chaos / "best.pt", inputs / "series", tmp_path / "bare", device="cpu",
                                   progress=False)
    assert report.predictions == [out / f"{patient.name}.nii.gz"]
    assert bare.predictions == [tmp_path / "bare" / "series.nii.gz"] and not bare.metrics_files
    expected = _expected(network, _served(chaos, "chaos", patient.name), "sigmoid", image.shape)[:, 0]
    for path in (report.predictions[0], bare.predictions[0]):
        written, geometry = data.read_image_file(path, dtype=None)
        assert written.shape == (1, *image.shape) and set(np.unique(written)) <= {0, 1}
        np.testing.assert_allclose(geometry["affine"], meta["affine"], atol=1e-5)
        np.testing.assert_allclose(geometry["spacing"], meta["spacing"], atol=1e-5)
        assert nib.load(path).shape == image.shape[::-1]
        _agree(written[0], expected, 1)
    probability, _ = data.read_image_file(out / f"{patient.name}_prob_liver.nii.gz")
    np.testing.assert_allclose(probability[0], expected, atol=1e-5)
    row = pd.read_csv(out / "metrics_cases.csv").iloc[0]
    labels = data.read_image_file(report.predictions[0], dtype=None)[0][0]
    assert row["dice"] == pytest.approx(evaluate_case(labels, truth, meta["spacing"], metrics=("dice",))["dice"])


def _geometry(path):
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def test_volumes_are_predicted_slice_by_slice_in_their_own_format_and_geometry(promise12, tmp_path):
    network, _ = load_network(promise12 / "best.pt")
    case = data.find_promise12_cases(data.sample_root("promise12"))[0]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in case.parent.glob(f"{case.stem}*"):
        shutil.copy(path, inputs / path.name)  # the .mhd, its data file and its segmentation
    volume = sitk.ReadImage(str(case))
    direction = np.asarray(volume.GetDirection()).reshape(3, 3)
    volume.SetDirection((direction @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])).ravel().tolist())  # rotated
    sitk.WriteImage(volume, str(inputs / "rotated.nii.gz"))
    sitk.WriteImage(volume, str(inputs / "rotated.nrrd"))
    out = tmp_path / "out"
    report = commands.predict_images(promise12 / "best.pt", inputs, out, device="cpu", probabilities=True,
                                     progress=False)
    assert report.failures == []
    assert [p.name for p in report.predictions] == [f"{case.stem}.mhd", "rotated.nii.gz", "rotated.nrrd"]
    for written, source in zip(report.predictions, (case, inputs / "rotated.nii.gz", inputs / "rotated.nrrd")):
        size, spacing, origin, direction = _geometry(written)
        expected = _geometry(source)
        assert size == expected[0]
        np.testing.assert_allclose(spacing, expected[1], atol=1e-6)
        np.testing.assert_allclose(origin, expected[2], atol=1e-4)
        np.testing.assert_allclose(direction, expected[3], atol=1e-6)
        assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(written))))) <= {0, 1}
    nifti, reference = nib.load(out / "rotated.nii.gz"), nib.load(inputs / "rotated.nii.gz")
    assert np.array_equal(nifti.affine, reference.affine)
    for field in HEADER_FIELDS:
        assert np.array_equal(nifti.header[field], reference.header[field]), field
    shape = sitk.GetArrayViewFromImage(volume).shape
    expected = _expected(network, _served(promise12, "promise12", case.stem), "sigmoid", shape)[:, 0]
    probability = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case.stem}_prob_prostate.mhd")))
    np.testing.assert_allclose(probability, expected, atol=1e-5)
    # the same voxels under another direction: the same prediction (slices along the array's z)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "rotated_prob_prostate.nrrd"))),
                               expected, atol=1e-5)
    table = pd.read_csv(out / "metrics_cases.csv")
    assert list(table["case"]) == [case.stem]  # only the .mhd has a segmentation beside it
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(report.predictions[0])))
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(inputs / f"{case.stem}_segmentation.mhd")))
    assert table["dice"].iloc[0] == pytest.approx(evaluate_case(labels, truth, metrics=("dice",))["dice"])


def test_nnunet_images_ts_are_predicted_in_their_geometry_with_the_training_preprocessing(nnunet, tmp_path):
    network, spec = load_network(nnunet)
    assert spec["preprocessing"]["options"]["ct_intensities"]  # the training cases' CT statistics
    root = data.sample_root("nnunet")
    images = tmp_path / "task" / "imagesTs"
    shutil.copytree(root / "imagesTs", images)
    train = data.get_dataset("nnunet", split="train", augment=False)
    case = train.cases[0]
    for file in (root / "imagesTr").glob(f"{case}_*.nii.gz"):  # a training case, labelled in labelsTs/
        shutil.copy(file, images / file.name)
    (tmp_path / "task" / "labelsTs").mkdir()
    shutil.copy(root / "labelsTr" / f"{case}.nii.gz", tmp_path / "task" / "labelsTs" / f"{case}.nii.gz")
    out = tmp_path / "out"
    report = commands.predict_images(nnunet, tmp_path / "task", out, device="cpu", probabilities=True,
                                     progress=False)
    tests = sorted({p.name.rsplit("_", 1)[0] for p in (root / "imagesTs").glob("*.nii.gz")})
    assert [p.name for p in report.predictions] == sorted(f"{c}.nii.gz" for c in [case, *tests])
    for path in report.predictions:
        reference = nib.load(images / path.name.replace(".nii.gz", "_0000.nii.gz"))
        written = nib.load(path)
        assert written.shape == reference.shape and np.array_equal(written.affine, reference.affine)
        for field in HEADER_FIELDS:
            assert np.array_equal(written.header[field], reference.header[field]), field
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
        maps = [nib.load(out / path.name.replace(".nii.gz", f"_prob_{name}.nii.gz")).get_fdata()
                for name in ("background", "liver", "spleen")]
        np.testing.assert_allclose(sum(maps), 1.0, atol=1e-5)
    # the training case: the network's forward on the cached training items, slices along z
    served = torch.stack([train[i]["image"] for i, (c, _) in enumerate(train.items) if c == case])
    expected = _expected(network, served, "softmax", served.shape)  # (S, K, H, W), 48 px: no resampling
    liver = nib.load(out / f"{case}_prob_liver.nii.gz").get_fdata().T  # (z, y, x)
    np.testing.assert_allclose(liver, expected[:, 1], atol=1e-5)
    table = pd.read_csv(out / "metrics_cases.csv")
    assert list(table["case"]) == [case] and {"dice/1", "dice/2", "iou/1", "hd95/2"} <= set(table.columns)


def test_a_bad_input_is_one_line_and_the_others_are_predicted(dsb, tmp_path, capsys):
    inputs = tmp_path / "in"
    cases = _copy_dsb_cases(inputs, count=3)
    broken = inputs / cases[1].name / "images" / f"{cases[1].name}.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    mask = next((inputs / cases[2].name / "masks").glob("*.png"))
    pixels = np.asarray(Image.open(mask)).copy()
    pixels[0, 0] = 7
    Image.fromarray(pixels).save(mask)
    out = tmp_path / "out"
    code = cli.main(["predict", "--checkpoint", str(dsb / "best.pt"), "--input", str(inputs), "--output", str(out),
                     "--device", "cpu", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    failed = [line for line in err if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {broken}: unreadable or truncated PNG")
    assert [line for line in err if line.startswith("not scored: ")] == [
        line for line in err if line.startswith(f"not scored: {mask}: unknown label values 7")]
    assert any("2 case(s) written" in line and "1 failed" in line and "1 not scored" in line for line in err)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{c.name}.png" for c in (cases[0], cases[2]))
    assert list(pd.read_csv(out / "metrics_cases.csv")["case"]) == [cases[0].name]


def test_the_retrain_alias_and_flags_that_do_not_apply(dsb, tmp_path, capsys, one_line_error):
    inputs = tmp_path / "in"
    _copy_dsb_cases(inputs, count=1)
    assert cli.main(["retrain", "--predict", "--checkpoint", str(dsb / "best.pt"), "--input", str(inputs),
                     "--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    assert "1 case(s) written" in capsys.readouterr().out
    line = one_line_error(["predict", "--checkpoint", dsb / "best.pt", "--input", inputs, "--output",
                           tmp_path / "other", "--overlap", "0.25"])
    assert line.startswith("error: --overlap: applies to 3D BraTS checkpoints;")
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(["predict", "--checkpoint", dsb / "best.pt", "--input", empty, "--output",
                           tmp_path / "other"])
    assert line.startswith(f"error: {empty}: no input for a dsb2018 network found; looked for PNG/TIFF/BMP")
    line = one_line_error(["predict", "--checkpoint", dsb / "best.pt", "--input", inputs, "--output",
                           tmp_path / "other", "--batch-size", "0"])
    assert line.endswith("--batch-size must be an integer >= 1, got 0")
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_a_retrains_best_checkpoint_describes_itself(dsb):
    spec, state = read_spec(dsb / "best.pt")
    assert spec == read_spec(dsb / "checkpoint.pt")[0]
    assert spec["training"]["config"] == state["config"] and spec["training"]["config"]["epochs"] == 1
    assert spec["training"]["splits"] == data.load_splits(dsb / "splits.json")
    genotype = json.loads((dsb.parent / "search" / "genotype.json").read_text())
    assert all(spec["network"]["genotype"][key] == genotype[key] for key in ("cells", "layout", "channels"))
    assert spec["preprocessing"]["image_size"] == SIZE and spec["input"]["size"] == [SIZE, SIZE]
    assert spec["labels"]["decision"] == "threshold" and spec["dataset"] == "dsb2018"
