"""Your own data in: search and retrain on a data set in the nnU-Net v2 raw or Decathlon layout,
multi-class, 2D files or volumes, with per-class metrics and a fingerprint."""
import json
import shutil

import pandas as pd
import pytest

import data
from nas.run import retrain_genotype, search
from nas.search import load_genotype_file

pytestmark = pytest.mark.slow
TINY = dict(device="cpu", progress=False, pictures=False, layout="1/0/1", channels=4,
            num_workers=0)


@pytest.fixture(scope="module")
def nifti_run(tmp_path_factory):
    """A multi-class search and retrain on the sample data (3D NIfTI, CT + PET, 2 organs)."""
    root = tmp_path_factory.mktemp("own")
    search("nnunet", None, root / "search", epochs=3, **TINY)
    result = retrain_genotype(root / "search" / "genotype.json", out=root / "retrain",
                              device="cpu", epochs=6, num_workers=0, progress=False)
    return root, result


def test_multi_class_search_logs_each_class_and_derives_a_softmax_genotype(nifti_run):
    root, _ = nifti_run
    log = pd.read_csv(root / "search" / "log.csv")
    for name in ("liver", "spleen"):
        assert f"val_dsc_{name}" in log and f"val_iou_{name}" in log
    # the architecture and the selection use the mean over the classes
    assert log["val_dsc"].iloc[-1] == pytest.approx(
        (log["val_dsc_liver"].iloc[-1] + log["val_dsc_spleen"].iloc[-1]) / 2)
    genotype, metadata = load_genotype_file(root / "search" / "genotype.json")
    assert genotype.num_classes == 3 and genotype.in_channels == 2  # background + 2 organs
    assert metadata["search"]["loss"] == "ce_dice" and metadata["preset"] == "chaos"  # CT
    assert metadata["data"]["class_names"] == ["liver", "spleen"]
    fingerprint = json.loads((root / "search" / "fingerprint.json").read_text())
    assert fingerprint["foreground_intensity_properties_per_channel"]["0"]["mean"] != 0


def test_retraining_raises_every_class_dsc_and_reports_it_per_class(nifti_run):
    root, result = nifti_run
    log = pd.read_csv(root / "retrain" / "log.csv")
    for name in ("liver", "spleen"):
        assert log[f"val_dsc_{name}"].max() > log[f"val_dsc_{name}"].iloc[0], name
    metrics = json.loads((root / "retrain" / "metrics.json").read_text())
    assert set(metrics["dsc_per_class"]) == {"liver", "spleen"}
    assert metrics["dsc"] == pytest.approx(sum(metrics["dsc_per_class"].values()) / 2)


def test_a_data_root_in_either_layout_and_of_2d_files_is_searched_and_retrained(tmp_path):
    for variant in ("png", "decathlon"):
        root = data.write_sample("nnunet", tmp_path / variant, variant=variant)
        run = tmp_path / f"search-{variant}"
        result = search("nnunet", root, run, epochs=1, **TINY)
        assert result["genotype"].in_channels == data.dataset_facts("nnunet", root).in_channels
        retrained = retrain_genotype(run / "genotype.json", data_root=root,
                                     out=tmp_path / f"retrain-{variant}", device="cpu",
                                     epochs=1, num_workers=0, progress=False)
        assert 0.0 <= retrained["metrics"]["dsc"] <= 1.0
    # 2D RGB files start from DSB2018's preset
    assert load_genotype_file(tmp_path / "search-png" / "genotype.json")[1]["preset"] == "dsb2018"


def test_the_2d_size_is_planned_from_the_fingerprint_of_real_data(tmp_path):
    root = tmp_path / "real"
    shutil.copytree(data.sample_root("nnunet"), root)
    (root / data.sample.MARKER).unlink()  # no longer sample data: its size is planned
    run = tmp_path / "search"
    result = search("nnunet", root, run, epochs=1, **TINY)
    fingerprint = json.loads((run / "fingerprint.json").read_text())
    planned = data.plan_2d_size(fingerprint)
    assert result["genotype"] and load_genotype_file(run / "genotype.json")[1]["search"][
        "image_size"] == planned


def test_a_data_set_that_fails_its_check_is_refused_before_training(tmp_path, one_line_error):
    root = tmp_path / "broken"
    shutil.copytree(data.sample_root("nnunet"), root)
    first = sorted((root / "imagesTr").glob("*_0001.nii.gz"))[0]
    first.unlink()  # a missing channel file
    line = one_line_error(["search", "--dataset", "nnunet", "--data-root", root, "--out",
                           tmp_path / "run", "--epochs", "1", "--device", "cpu"])
    assert line.startswith(f"error: {root}: ") and "problem(s) in 1 case(s)" in line
    assert first.name.split("_0001")[0] in line
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
