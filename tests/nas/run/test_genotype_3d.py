"""A 3D genotype after its search: ``retrain.py --genotype`` trains it through the path of
``--model`` (crops, whole-volume validation, best checkpoint), ``lwnas predict`` segments BraTS
cases with it into NIfTI of the input's geometry, and the complexity table and the report list
it beside the hand-designed networks."""
import dataclasses
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import data
from nas import cli
from nas import run as commands
from nas.inference import predict_probabilities
from nas.pictures.comparison import compare_runs
from nas.run.brats import segment_volume
from nas.run.networks import load_network, read_spec, searched_network
from nas.search import network_complexity, save_genotype
from nas.train import load_checkpoint
from supernet import FixedUNet

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

HEADER_FIELDS = ("dim", "pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z")


def _genotype_file(make_genotype, path, target="regions", spatial_dims=3, in_channels=4):
    genotype = dataclasses.replace(
        make_genotype((1, 0, 1), channels=4, in_channels=in_channels,
                      num_classes=3 if target == "regions" else 4),
        spatial_dims=spatial_dims)
    activation = "sigmoid" if target == "regions" else "softmax"
    save_genotype(path, genotype, dataset="brats", output_activation=activation,
                  data={"target": target}, data_options={"target": target})
    return genotype, path


@pytest.fixture(scope="module")
def retrained(make_genotype, tmp_path_factory):
    folder = tmp_path_factory.mktemp("genotype-3d")
    genotype, path = _genotype_file(make_genotype, folder / "genotype.json")
    out = folder / "retrain"
    code = cli.main(["retrain", "--genotype", str(path), "--out", str(out), "--epochs", "2",
                     "--crop-size", "16", "--device", "cpu", "--workers", "0", "--no-progress"])
    assert code == 0
    return genotype, path, out


def test_retrain_trains_the_genotype_as_the_3d_networks_are(retrained):
    genotype, path, out = retrained
    for name in ("best.pt", "checkpoint.pt", "log.csv", "metrics.json", "test_cases.csv"):
        assert (out / name).is_file(), name
    best = load_checkpoint(out / "best.pt")
    spec = best["spec"]  # the one description: predict and --resume read it
    assert spec["input"]["size"] == [16, 16, 16] and spec["dataset"] == "brats"
    assert spec["network"]["name"] == "genotype" and spec["network"]["output_activation"] == "sigmoid"
    assert spec["preprocessing"]["options"]["target"] == "regions"
    assert not {"kind", "network", "roi_size", "data"} & set(best)
    # the 3D genotype preset: sigmoid regions train with the per-channel soft Dice, and the
    # genotype keeps seed 002's retrain drop-path
    assert best["config"]["loss"] == "dice_sigmoid" and best["config"]["drop_path"] == 0.15
    assert tuple(best["config"]["image_size"]) == (16, 16, 16)
    log = pd.read_csv(out / "log.csv")
    assert len(log) == 2 and log[["val_dice_wt", "val_dice_tc", "val_dice_et"]].notna().all(axis=None)
    assert best["epoch"] == int(log["val_dice_mean"].idxmax())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "genotype" and metrics["genotype"] == str(path)
    counted = network_complexity(genotype, (4, 16, 16, 16))
    assert metrics["params"] == counted["params"] and metrics["flops"] == counted["flops"]
    assert metrics["input_shape"] == [4, 16, 16, 16]
    table = pd.read_csv(out / "test_cases.csv")
    for region in ("WT", "TC", "ET"):
        assert metrics["dice"][region] == pytest.approx(table[f"dice/{region}"].mean())


def test_predict_writes_the_input_geometry_and_the_release_labels(retrained, tmp_path, capsys):
    _, _, out = retrained
    network, spec = commands.load_model_checkpoint(out / "best.pt")
    assert isinstance(network, FixedUNet) and network.output_activation == "sigmoid"
    assert spec["network"]["kind"] == "genotype" and spec["spatial_dims"] == 3
    state = torch.load(out / "best.pt", weights_only=True)
    assert all(torch.equal(value, state["model"][key]) for key, value in network.state_dict().items())
    root = data.sample_root("brats")
    assert cli.main(["predict", "--checkpoint", str(out / "best.pt"), "--input", str(root),
                     "--output", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]) == 0
    assert "4 case(s) written" in capsys.readouterr().out
    for case in data.find_brats_cases(root):
        written = nib.load(tmp_path / "out" / f"{case.name}.nii.gz")
        reference = nib.load(case / f"{case.name}_flair.nii.gz")
        assert written.shape == reference.shape and np.array_equal(written.affine, reference.affine)
        for field in HEADER_FIELDS:
            assert np.array_equal(written.header[field], reference.header[field]), field
        labels = np.asarray(written.dataobj)
        assert set(np.unique(labels)) <= {0, 1, 2, 4}
        image, _, _ = data.read_brats_case(case)
        expected = segment_volume(network, torch.from_numpy(image), (16, 16, 16),
                                  et_threshold=data.ET_THRESHOLD)
        assert np.array_equal(labels, expected)  # the checkpoint's network, post-processed
    assert (tmp_path / "out" / "metrics_cases.csv").is_file()


def test_the_report_and_the_models_table_list_it_beside_the_hand_designed_ones(
        retrained, tmp_path, capsys):
    genotype, path, out = retrained
    mfsnet = tmp_path / "mfsnet"
    mfsnet.mkdir()  # a hand-designed network's run as retrain.py --model writes it
    (mfsnet / "metrics.json").write_text(json.dumps({
        "dataset": "brats", "model": "mfsnet", "params": 3194784, "flops": 20021 * 10**6,
        "input_shape": [4, 128, 128, 128],
        "dice": {"WT": 0.9, "TC": 0.8, "ET": 0.7, "mean": 0.8}}))
    tables = compare_runs([out, mfsnet], repeats=1)
    rows = tables["retrained"].set_index("label")
    metrics = json.loads((out / "metrics.json").read_text())
    assert rows.loc["searched", "dice_wt"] == metrics["dice"]["WT"]
    assert rows.loc["searched", "dice_mean"] == metrics["dice"]["mean"]
    assert rows.loc["searched", "params_M"] == metrics["params"] / 1e6
    assert rows.loc["mfsnet", "dice_et"] == 0.7 and rows.loc["mfsnet", "flops_G"] == 20.021
    assert rows.loc["searched", "latency_ms"] > 0  # the genotype network, built and timed
    csv = tmp_path / "models.csv"
    assert cli.main(["complexity", "models", "--size", "32", "--genotype", str(path),
                     "--csv", str(csv)]) == 0
    frame = pd.read_csv(csv).set_index("model")
    searched = frame.loc[f"searched {path}"]
    counted = network_complexity(genotype, (4, 32, 32, 32))
    assert searched["params_M"] == round(counted["params"] / 1e6, 3)
    assert searched["macs_G"] == round(counted["flops"] / 1e9, 3)
    assert {"mfsnet", "dmfnet", "mf_res2net"} <= set(frame.index)


def test_the_target_chooses_the_preset_loss(make_genotype, tmp_path):
    _, index = _genotype_file(make_genotype, tmp_path / "index.json", target="index")
    _, regions = _genotype_file(make_genotype, tmp_path / "regions.json")
    assert searched_network("genotype", index).preset.loss == "mixed_dice_jaccard"  # as MFS-Net
    assert searched_network("genotype", regions).preset.loss == "dice_sigmoid"
    assert searched_network("genotype", index).entry()["output_activation"] == "softmax"


def test_genotype_errors_end_in_one_line_before_any_data(make_genotype, one_line_error, tmp_path):
    _, wrong = _genotype_file(make_genotype, tmp_path / "wrong.json", in_channels=1)
    line = one_line_error(["retrain", "--genotype", wrong, "--out", tmp_path / "a"])
    assert "does not fit the brats data: it has 1 input channel(s), the brats data 4" in line
    _, planar = _genotype_file(make_genotype, tmp_path / "planar.json", spatial_dims=2,
                               in_channels=3)
    line = one_line_error(["retrain", "--genotype", planar, "--crop-size", "16",
                           "--dataset", "dsb2018", "--out", tmp_path / "b"])
    assert "--crop-size applies to 3D networks" in line
    _, regions = _genotype_file(make_genotype, tmp_path / "regions.json")
    line = one_line_error(["retrain", "--genotype", regions, "--loss", "generalised_dice",
                           "--out", tmp_path / "c"])
    assert "--loss generalised_dice trains a softmax output; the regions target" in line
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_3d_genotype_of_another_volume_data_set_trains_with_its_classes(make_genotype,
                                                                          tmp_path):
    genotype = dataclasses.replace(make_genotype((1, 0, 1), channels=4, in_channels=2,
                                                 num_classes=3), spatial_dims=3)
    path = save_genotype(tmp_path / "genotype.json", genotype, dataset="nnunet",
                         output_activation="softmax", data_options={"spatial_dims": 3})
    result = commands.retrain_genotype(path, out=tmp_path / "run", device="cpu", epochs=1,
                                       num_workers=0, progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    crop = list(data.get_preset("nnunet").sample_crop_size)
    assert metrics["input_shape"] == [2, *crop] and metrics["model"] == "genotype"
    assert set(metrics["dsc_per_class"]) == {"liver", "spleen"}
    assert metrics["dsc"] == pytest.approx(np.mean(list(metrics["dsc_per_class"].values())))
    assert metrics["flops"] == network_complexity(genotype, (2, *crop))["flops"]
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert {"val_dice_liver", "val_dice_spleen", "val_dice_mean"} <= set(log.columns)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["spec"]["network"]["output_activation"] == "softmax"
    assert best["config"]["loss"] == "mixed_dice_jaccard" and result["best"]["epoch"] == 0
    spec, _ = read_spec(tmp_path / "run" / "best.pt")  # describes itself, as every retrain's
    assert spec["spatial_dims"] == 3 and spec["input"]["size"] == crop
    assert spec["labels"]["names"] == ["background", "liver", "spleen"]
    with pytest.raises(ValueError, match="a 3D genotype network of nnunet volumes"):
        commands.load_model_checkpoint(tmp_path / "run" / "best.pt")  # BraTS' reader is not its

    # lwnas predict segments the data set's volumes whole, in each input's geometry, and scores them
    root = data.sample_root("nnunet")
    out = tmp_path / "predictions"
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--input",
                     str(root / "imagesTr"), "--output", str(out), "--device", "cpu", "--no-progress",
                     "--probabilities"]) == 0
    network, spec = load_network(tmp_path / "run" / "best.pt")
    items = data.find_prediction_inputs(root / "imagesTr", spec["preprocessing"])
    assert items and all(item.label is not None for item in items)
    for item in items:
        written = nib.load(out / f"{item.case}.nii.gz")
        reference = nib.load(item.files[0])
        assert written.shape == reference.shape and np.allclose(written.affine, reference.affine)
        volume, _ = data.read_prediction_input(item, spec["preprocessing"])
        probabilities = predict_probabilities(network, torch.from_numpy(volume), crop)
        expected = np.asarray([0, 1, 2])[probabilities.argmax(0).numpy()]
        labels, _ = data.read_image_file(out / f"{item.case}.nii.gz", dtype=None)  # the readers' axis order
        assert np.array_equal(labels[0], expected)  # the checkpoint's network
        assert (out / f"{item.case}_prob_liver.nii.gz").is_file()
    cases = pd.read_csv(out / "metrics_cases.csv")
    assert sorted(cases["case"]) == sorted(item.case for item in items)
