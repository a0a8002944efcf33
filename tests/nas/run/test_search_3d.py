"""``search.py --dataset brats`` and ``--dataset nnunet --spatial-dims 3``: the 3D search
on the sample data, end to end, and the one-line errors of its settings."""

import pandas as pd
import pytest
import torch

import data
from nas import cli
from nas import run as commands
from nas.run.networks import build_network, genotype_entry
from nas.search import load_genotype_file, network_complexity

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow

#: the smallest 3D search: 16^3 crops, 4 channels, one encoder and one decoder cell; whole-volume
#: validation without overlap (36 windows of the 48x56x40 case instead of 120)
TINY = dict(device="cpu", channels=4, layout="1/0/1", crop_size=16, overlap=0.0, num_workers=0,
            progress=False, pictures=False)


@pytest.fixture(scope="module")
def brats_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search-brats") / "run"
    return out, commands.search("brats", out=out, epochs=2, **TINY)


def test_brats_search_derives_a_valid_3d_genotype(brats_search):
    out, result = brats_search
    genotype, metadata = load_genotype_file(out / "genotype.json")
    assert genotype == result["genotype"] and genotype.spatial_dims == 3
    assert (genotype.in_channels, genotype.num_classes) == (4, 3)  # 4 modalities, WT/TC/ET
    assert metadata["output_activation"] == "sigmoid" and metadata["data"]["target"] == "regions"
    assert metadata["data_options"] == {"target": "regions"} and metadata["preset"] == "brats"
    search = metadata["search"]
    assert search["crop_size"] == [16, 16, 16] and search["spatial_dims"] == 3
    assert search["loss"] == "bce_dice" and search["epochs"] == 2
    # the preset's budget: MFS-Net's params, and its 4 x 128^3 MACs scaled to the 16^3 crop
    assert search["budget_params"] == pytest.approx(3.194784)
    assert search["budget_flops"] == pytest.approx(20.021 / 512, rel=1e-3)
    assert metadata["complexity"]["input_shape"] == [4, 16, 16, 16]
    counted = network_complexity(genotype, (4, 16, 16, 16))
    assert {k: metadata["complexity"][k] for k in ("params", "flops")} == counted
    network = build_network(genotype_entry(genotype, metadata))
    assert network.output_activation == "sigmoid" and network.spatial_dims == 3
    with torch.no_grad():
        assert network.eval()(torch.randn(1, 4, 48, 56, 40)).shape == (1, 3, 48, 56, 40)


def test_brats_search_validates_whole_volumes_each_epoch(brats_search):
    out, result = brats_search
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [0, 1]
    regions = ["val_dice_wt", "val_dice_tc", "val_dice_et"]
    assert log[regions + ["val_dice_mean"]].notna().all(axis=None)
    assert log[regions].apply(lambda column: column.between(0, 1)).all(axis=None)
    assert (log[regions].mean(axis=1) - log["val_dice_mean"]).abs().max() < 1e-12
    splits = data.load_splits(out / "splits.json")
    assert (log["val_cases"] == len(splits["val"])).all()
    for column in ("expected_params_M", "expected_flops_G", "derived_params_M", "active_ops"):
        assert log[column].notna().all(), column


def test_nnunet_volumes_are_searched_in_3d(tmp_path):
    out = tmp_path / "run"
    options = {key: value for key, value in TINY.items() if key != "crop_size"}
    result = commands.search("nnunet", out=out, epochs=1, data_options={"spatial_dims": 3},
                             **options)
    genotype, metadata = load_genotype_file(out / "genotype.json")
    assert genotype.spatial_dims == 3 and genotype.in_channels == 2  # CT and PET
    assert genotype.num_classes == 3 and metadata["output_activation"] == "softmax"
    assert metadata["preset"] == "brats"  # volumes searched in 3D start from the 3D preset
    sample_crop = list(data.get_preset("nnunet").sample_crop_size)
    assert metadata["search"]["crop_size"] == sample_crop and metadata["search"]["loss"] == "ce_dice"
    log = pd.read_csv(out / "log.csv")
    assert {"val_dice_liver", "val_dice_spleen", "val_dice_mean"} <= set(log.columns)
    assert log[["val_dice_liver", "val_dice_spleen"]].mean(axis=1).iloc[0] == pytest.approx(
        log["val_dice_mean"].iloc[0])
    assert result["history"][0]["val_cases"] == len(data.load_splits(out / "splits.json")["val"])
    assert (out / "fingerprint.json").is_file()

    # the searched genotype retrains on the search's splits and segments the volumes whole
    assert cli.main(["retrain", "--genotype", str(out / "genotype.json"), "--out", str(tmp_path / "retrain"),
                     "--epochs", "1", "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    assert data.load_splits(tmp_path / "retrain" / "splits.json") == data.load_splits(out / "splits.json")
    images = data.sample_root("nnunet") / "imagesTr"
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "retrain" / "best.pt"), "--input", str(images),
                     "--output", str(tmp_path / "predictions"), "--device", "cpu", "--no-progress"]) == 0
    written = sorted(path.name for path in (tmp_path / "predictions").glob("*.nii.gz"))
    assert written and len(written) == len(pd.read_csv(tmp_path / "predictions" / "metrics_cases.csv"))


@pytest.mark.parametrize("argv, message", [
    (["--option", "target=labels"], "--option target=labels serves BraTS label maps"),
    (["--image-size", "64"], "--image-size applies to 2D searches; brats is searched in 3D"),
    (["--loss", "ce_dice"], "--loss ce_dice trains a softmax output; the regions target"),
    (["--option", "target=index", "--loss", "bce_dice"], "the index target is learnt through a softmax"),
    (["--crop-size", "16x16"], "expected N or NxNxN"),
    (["--overlap", "1"], "--overlap must be a number >= 0 and < 1"),
])
def test_bad_3d_settings_end_in_one_line_before_any_data(one_line_error, tmp_path, argv, message):
    out = tmp_path / "run"
    try:
        line = one_line_error(["search", "--dataset", "brats", "--out", out, *argv])
    except SystemExit as stop:  # argparse's own check of a flag's type
        assert stop.code == 2 and message == "expected N or NxNxN"
        return
    assert message in line, line
    assert not out.exists()


def test_crop_size_is_refused_for_a_2d_search(one_line_error, tmp_path):
    line = one_line_error(["search", "--dataset", "dsb2018", "--crop-size", "16",
                           "--out", tmp_path / "run"])
    assert "--crop-size applies to 3D searches; dsb2018 is searched on 2D images" in line
