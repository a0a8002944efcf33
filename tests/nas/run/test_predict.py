"""``retrain.py --predict``: whole-volume prediction of BraTS cases into NIfTI files with the
input's geometry, TTA, ET post-processing, metrics tables, and one-line errors for bad input."""
import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import data
import models
from data import BRATS_REGIONS, remove_small_enhancing_tumour
from nas import cli
from nas import run as brats_commands
from nas.inference import predict_probabilities
from nas.metrics import evaluate_case
from nas.run.brats import segment_volume
from nas.train import load_checkpoint, save_checkpoint
from tests.runs import TINY_MFSNET

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

LABELS = {0, 1, 2, 4}
HEADER_FIELDS = ("dim", "pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z",
                 "quatern_b", "quatern_c", "quatern_d", "xyzt_units")


@pytest.fixture(scope="module")
def checkpoint(brats_run):
    out, _ = brats_run
    return out / "best.pt"


@pytest.fixture(scope="module")
def network(checkpoint):
    return brats_commands.load_model_checkpoint(checkpoint)[0]


def _sample_cases():
    return data.find_brats_cases(data.sample_root("brats"))


def _copy_cases(target, cases):
    target.mkdir(parents=True, exist_ok=True)
    for case in cases:
        shutil.copytree(case, target / case.name)
    return target


def _copy_case_as(case, target, name):
    """A copy of a case folder under another case id (files renamed to match)."""
    folder = target / name
    folder.mkdir()
    for path in case.iterdir():
        shutil.copy(path, folder / path.name.replace(case.name, name))
    return folder


def _expected_labels(network, case, **options):
    image, _, _ = data.read_brats_case(case)
    return segment_volume(network, torch.from_numpy(image), (32, 32, 32), **options)


def test_predictions_keep_the_input_geometry_and_match_the_network(checkpoint, network,
                                                                   tmp_path):
    cases = _sample_cases()
    out = tmp_path / "out"
    report = brats_commands.predict(checkpoint, data.sample_root("brats"), out, device="cpu",
                                    progress=False)
    assert report.failures == []
    assert report.predictions == [out / f"{case.name}.nii.gz" for case in cases]
    table = pd.read_csv(out / "metrics_cases.csv")
    assert report.metrics_files == (out / "metrics_cases.csv", out / "metrics_summary.csv")
    assert list(table["case"]) == [case.name for case in cases]
    dice = {"as written": [], **{f"truth flipped on axis {axis}": [] for axis in range(3)}}
    for case, path in zip(cases, report.predictions):
        written, reference = nib.load(path), nib.load(case / f"{case.name}_flair.nii.gz")
        assert written.shape == reference.shape
        assert np.array_equal(written.affine, reference.affine)
        for field in HEADER_FIELDS:
            assert np.array_equal(written.header[field], reference.header[field]), field
        labels = np.asarray(written.dataobj)
        assert np.issubdtype(labels.dtype, np.integer) and set(np.unique(labels)) <= LABELS
        assert np.array_equal(labels, _expected_labels(network, case, et_threshold=400))
        truth = np.asarray(nib.load(case / f"{case.name}_seg.nii.gz").dataobj)
        scores = evaluate_case(labels, truth, regions=BRATS_REGIONS,
                               metrics=("dice", "hd95", "sensitivity", "specificity"))
        row = table[table["case"] == case.name].iloc[0]
        for key, value in scores.items():
            assert row[key] == pytest.approx(value), key
        dice["as written"] += [scores[f"dice/{region}"] for region in BRATS_REGIONS]
        for axis in range(3):
            flipped = evaluate_case(labels, np.flip(truth, axis).copy(), regions=BRATS_REGIONS, metrics=("dice",))
            dice[f"truth flipped on axis {axis}"] += [flipped[f"dice/{region}"] for region in BRATS_REGIONS]
    # In the right orientation: the labels as written overlap the truth better than any mirror
    # of it (a relation, not a figure: how well the tiny network learnt depends on the CPU).
    # Measured over 3 training seeds: 0.35-0.67 as written, at most 0.32 mirrored.
    means = {name: np.mean(values) for name, values in dice.items()}
    assert means["as written"] == max(means.values()), means
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_cli_predicts_with_the_eight_flip_tta(checkpoint, network, tmp_path, capsys):
    case = _sample_cases()[0]
    inputs = _copy_cases(tmp_path / "in", [case])
    assert cli.main(["retrain", "--predict", "--checkpoint", str(checkpoint), "--input", str(inputs),
                         "--output", str(tmp_path / "out"), "--tta", "--device", "cpu"]) == 0
    assert "1 case(s) written" in capsys.readouterr().out
    written = np.asarray(nib.load(tmp_path / "out" / f"{case.name}.nii.gz").dataobj)
    # the window layout is mirror symmetric, so per-window flips = flipping the whole volume
    image = torch.from_numpy(data.read_brats_case(case)[0])
    flips = [(), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)]
    mean = sum(predict_probabilities(network, image.flip(dims), (32, 32, 32)).flip(dims)
               for dims in flips) / len(flips)
    expected = remove_small_enhancing_tumour(data.brats_index_to_labels(mean.argmax(0).numpy()),
                                             400)
    plain = _expected_labels(network, case, et_threshold=400)
    changed = expected != plain
    assert changed.any()  # TTA changes this network's answer somewhere (37 voxels when measured)
    # where it does, the written labels are the TTA ones; elsewhere only argmax ties, which the
    # two summation orders may round either way, can differ
    assert (written[changed] == expected[changed]).mean() > 0.9
    assert (written != expected).mean() < 1e-4


def test_small_enhancing_tumour_becomes_core(checkpoint, tmp_path):
    case = _sample_cases()[1]
    inputs = _copy_cases(tmp_path / "in", [case])

    def predicted(threshold):
        out = tmp_path / f"out{threshold}"
        brats_commands.predict(checkpoint, inputs, out, device="cpu", et_threshold=threshold,
                               progress=False)
        return np.asarray(nib.load(out / f"{case.name}.nii.gz").dataobj)

    raw = predicted(0)
    enhancing = int((raw == 4).sum())
    assert 0 < enhancing
    assert np.array_equal(predicted(enhancing), raw)  # not below the threshold: kept
    merged = predicted(enhancing + 1)
    assert not (merged == 4).any()
    assert np.array_equal(merged, np.where(raw == 4, 1, raw))  # ET -> necrosis/core only


def test_bad_cases_are_reported_in_one_line_and_the_others_predicted(checkpoint, tmp_path,
                                                                     capsys):
    cases = _sample_cases()
    inputs = _copy_cases(tmp_path / "in", cases)
    _copy_case_as(cases[0], inputs, "BraTS2021_00005")
    (inputs / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()
    t2 = inputs / "BraTS2021_00003" / "BraTS2021_00003_t2.nii.gz"
    original = nib.load(t2)
    nib.save(nib.Nifti1Image(np.zeros((40, 56, 40), np.int16), original.affine), t2)
    flair = inputs / "BraTS2021_00004" / "BraTS2021_00004_flair.nii.gz"
    flair.write_bytes(gzip.compress(b"not a NIfTI file" * 10))
    out = tmp_path / "out"

    code = cli.main(["retrain", "--predict", "--checkpoint", str(checkpoint), "--input", str(inputs),
                         "--output", str(out), "--device", "cpu", "--no-progress"])
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed")]
    assert len(errors) == 3
    assert errors[0].startswith(f"failed: {inputs / 'BraTS2021_00002'}: missing modality t1ce")
    assert errors[1].startswith(f"failed: {t2}: shape 40x56x40 differs")
    assert errors[2].startswith(f"failed: {flair}:")
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["BraTS2021_00001.nii.gz",
                                                           "BraTS2021_00005.nii.gz"]
    assert list(pd.read_csv(out / "metrics_cases.csv")["case"]) == ["BraTS2021_00001",
                                                                   "BraTS2021_00005"]
    report = brats_commands.predict(checkpoint, inputs, tmp_path / "again", device="cpu",
                                    progress=False)
    assert len(report.failures) == 3 and all("\n" not in line for line in report.failures)


def test_a_nan_case_fails_naming_its_modality_and_the_rest_are_predicted(checkpoint, tmp_path,
                                                                         capsys):
    cases = _sample_cases()
    inputs = _copy_cases(tmp_path / "in", cases[:2])
    t2 = inputs / cases[1].name / f"{cases[1].name}_t2.nii.gz"
    image = nib.load(t2)
    array = np.asarray(image.dataobj, dtype=np.float32)
    array[10:14, 10:14, 10:14] = np.nan
    nib.save(nib.Nifti1Image(array, image.affine), str(t2))
    code = cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs),
                     "--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 1  # not a silent all-background segmentation with exit 0
    err = capsys.readouterr().err
    assert f"failed: {t2}: modality t2 holds 64 NaN or infinite voxel(s)" in err
    assert "1 case(s) written" in err and "1 failed" in err
    assert [p.name for p in (tmp_path / "out").glob("*.nii.gz")] == [f"{cases[0].name}.nii.gz"]


def test_a_segmentation_with_an_unknown_label_is_predicted_and_reported_unscored(
        checkpoint, tmp_path, capsys):
    cases = _sample_cases()
    inputs = _copy_cases(tmp_path / "in", cases[:2])
    seg = inputs / cases[1].name / f"{cases[1].name}_seg.nii.gz"
    image = nib.load(seg)
    labels = np.asarray(image.dataobj).copy()
    labels[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(labels, image.affine), str(seg))
    code = cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs),
                     "--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"not scored: {seg}: unknown label values 5" in err
    assert "2 case(s) written" in err and "1 not scored" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == sorted(
        f"{case.name}.nii.gz" for case in cases[:2])
    assert list(pd.read_csv(tmp_path / "out" / "metrics_cases.csv")["case"]) == [cases[0].name]


def _edited_checkpoint(checkpoint, path, drop=(), **changes):
    state = load_checkpoint(checkpoint)
    state.update(changes)
    for key in drop:
        state.pop(key)
    save_checkpoint(path, state)
    return path


def test_bad_checkpoints_give_one_line_errors_naming_the_file(checkpoint, tmp_path, capsys):
    inputs = _copy_cases(tmp_path / "in", _sample_cases()[:1])
    genotype = tmp_path / "genotype.pt"
    save_checkpoint(genotype, {"epoch": 0, "config": {"model": "genotype"}, "model": {},
                               "genotype": json.dumps({"dataset": "dsb2018"})})
    spec = load_checkpoint(checkpoint)["spec"]  # prediction reads the inference description only
    three = models.build("mfsnet", in_channels=3, **TINY_MFSNET)
    channels = _edited_checkpoint(checkpoint, tmp_path / "three.pt", model=three.state_dict(),
                                  spec={**spec, "network": {**spec["network"], "in_channels": 3}})
    wider = _edited_checkpoint(checkpoint, tmp_path / "wider.pt", spec={
        **spec, "network": {**spec["network"], "kwargs": {**TINY_MFSNET, "channels": 32}}})
    old = _edited_checkpoint(checkpoint, tmp_path / "old.pt", drop=("spec",))
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    cases = [(genotype, "holds a genotype network"),
             (channels, "the network takes 3 input channel(s), its preprocessing gives 4"),
             (wider, "weights do not fit the mfsnet network"),
             (old, "no inference description; missing fields spec.format, spec.lwnas_version"),
             (text, "not a readable checkpoint")]
    for path, message in cases:
        with pytest.raises(ValueError) as error:
            brats_commands.predict(path, inputs, tmp_path / "out", device="cpu")
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="holds a mfsnet network; expected dmfnet"):
        brats_commands.load_model_checkpoint(checkpoint, expected_model="dmfnet")
    assert not (tmp_path / "out").exists()  # refused before anything was written

    assert cli.main(["retrain", "--predict", "--model", "dmfnet", "--checkpoint", str(checkpoint),
                         "--input", str(inputs), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {checkpoint}: holds a mfsnet network; "
                                               "expected dmfnet")
    code = cli.main(["retrain", "--predict", "--checkpoint", str(channels), "--input", str(inputs),
                         "--output", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {channels}: the network takes 3 input channel(s), its preprocessing gives 4 (flair, t1, "
        "t1ce, t2)"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no cases here")
    assert cli.main(["retrain", "--predict", "--checkpoint", str(checkpoint), "--input", str(empty),
                         "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {empty}: no BraTS case folders found")


def test_2023_inputs_get_enhancing_tumour_written_as_3(checkpoint, tmp_path, monkeypatch):
    """The relabelling and the scoring convention, with a stub network whose output is known:
    it predicts the case's own truth (labels 0/1/2/4 inside), so what is written must be the
    release's file exactly (ET = 3) and every region scores Dice 1."""
    root = data.write_sample("brats", tmp_path / "in", year="2023", cases=1)
    (case,) = data.find_brats_cases(root)
    _, truth, _ = data.read_brats_case(case, require_label=True)
    assert (truth == 4).any()  # the sample case has enhancing tumour to relabel

    def known_output(network, image, roi_size, **options):
        return truth.copy()

    monkeypatch.setattr("nas.run.brats_prediction.segment_volume", known_output)
    report = brats_commands.predict(checkpoint, root, tmp_path / "out", device="cpu",
                                    progress=False)
    written = np.asarray(nib.load(report.predictions[0]).dataobj)
    _, seg_file = data.brats_case_files(case)
    assert np.array_equal(written, np.asarray(nib.load(seg_file).dataobj))
    assert set(np.unique(written)) <= {0, 1, 2, 3} and (written == 3).any()
    table = pd.read_csv(report.metrics_files[0])
    for region in BRATS_REGIONS:  # scored in the one convention (ET = 4 inside)
        assert table[f"dice/{region}"].iloc[0] == 1.0


def test_the_checkpoint_describes_itself_and_predict_refuses_2d_flags(checkpoint, tmp_path, one_line_error):
    spec = load_checkpoint(checkpoint)["spec"]
    assert spec["network"] == {"kind": "model", "name": "mfsnet", "kwargs": TINY_MFSNET, "in_channels": 4,
                               "num_classes": 4, "output_activation": "softmax"}
    assert spec["input"] == {"channels": list(data.MODALITIES), "size": [32, 32, 32]}
    assert spec["labels"]["values"] == [0, 1, 2, 4] and spec["labels"]["decision"] == "argmax"
    assert spec["preprocessing"]["options"]["target"] == "index" and spec["spatial_dims"] == 3
    line = one_line_error(["predict", "--checkpoint", checkpoint, "--input", tmp_path, "--output",
                           tmp_path / "out", "--probabilities"])
    assert line.startswith("error: --probabilities: not available for 3D checkpoints")
