"""K-fold retraining: a folds run of a tiny genotype on the sample DSB2018 images writes its folds
and the cross-validated scores, resumes the fold it reached after a crash, lets a baseline train
on the same folds (the report pairs them case by case), and its folds ensemble in prediction and
export as the mean of their probabilities."""
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
from PIL import Image

import data
from nas import cli
from nas import run as commands
from nas.run import image_training
from nas.run.export import example_input
from nas.run.networks import load_fold_ensemble, load_network
from nas.run.prediction import slice_probabilities
from nas.search import save_genotype
from tests.runs import SIZE

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow

FOLDS = 3
FOLD_FILES = ("splits.json", "checkpoint.pt", "best.pt", "log.csv", "metrics.json", "test_cases.csv",
              "test_summary.csv")


def _settings(**extra):
    return dict(device="cpu", batch_size=4, num_workers=0, progress=False, **extra)


@pytest.fixture(scope="module")
def folds_run(tmp_path_factory, make_genotype):
    """(genotype file, folds run, what fold 0 and fold 1 held before the crash): 3 folds of 2
    epochs, stopped by a crash at the end of fold 1's first epoch, then resumed."""
    root = tmp_path_factory.mktemp("folds")
    genotype = save_genotype(root / "search" / "genotype.json", make_genotype(in_channels=3), dataset="dsb2018",
                             search={"image_size": SIZE})
    data.save_splits(root / "search" / "splits.json", data.default_splits("dsb2018"))
    run = root / "searched"
    real = image_training.run_retrain

    def crash_in_fold_1(*args, **kwargs):
        if Path(args[3]).name == "fold_1":
            def stop(epoch, row):
                raise KeyboardInterrupt
            kwargs["on_epoch_end"] = stop
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_training, "run_retrain", crash_in_fold_1)
        with pytest.raises(KeyboardInterrupt):
            commands.retrain_genotype(genotype, out=run, folds=FOLDS, epochs=2, **_settings())
    before = {"fold_0": (run / "fold_0" / "metrics.json").read_text(),
              "fold_1": pd.read_csv(run / "fold_1" / "log.csv")}
    assert not (run / "fold_2").exists() and not (run / "cv_metrics.json").exists()
    commands.retrain_genotype(genotype, out=run, resume=True, epochs=2, **_settings())
    return genotype, run, before


def test_the_folds_partition_the_cases_the_search_did_not_validate_on(folds_run):
    genotype, run, _ = folds_run
    search = data.load_splits(genotype.parent / "splits.json")
    splits = data.load_splits(run / "splits.json")
    tested = [case for fold in splits["folds"] for case in fold["test"]]
    assert sorted(tested) == sorted(search["train"] + search["test"]) and len(set(tested)) == len(tested)
    for index, fold in enumerate(splits["folds"]):
        assert fold["val"] == search["val"] and not set(fold["test"]) & set(fold["train"])
        assert data.load_splits(run / f"fold_{index}" / "splits.json") == data.fold_splits(splits, index)


def test_a_folds_run_writes_each_fold_and_the_cross_validated_scores(folds_run):
    _, run, _ = folds_run
    for index in range(FOLDS):
        assert all((run / f"fold_{index}" / name).is_file() for name in FOLD_FILES), index
    summary = json.loads((run / "cv_metrics.json").read_text())
    per_fold = [json.loads((run / f"fold_{index}" / "metrics.json").read_text()) for index in range(FOLDS)]
    assert summary["folds"] == FOLDS and summary["scoring"] == "per image"  # DSB2018: seed 002's rule
    assert summary["mean"]["dsc"] == pytest.approx(np.mean([m["dsc"] for m in per_fold]))
    assert summary["sd"]["dsc"] == pytest.approx(np.std([m["dsc"] for m in per_fold], ddof=1))
    assert [row["params"] for row in summary["per_fold"]] == [m["params"] for m in per_fold]
    table = pd.read_csv(run / "cv_metrics.csv")
    assert list(table["fold"].astype(str)) == ["0", "1", "2", "mean", "sd"]
    cases = pd.read_csv(run / "cv_cases.csv")
    splits = data.load_splits(run / "splits.json")
    assert dict(zip(cases["case"], cases["fold"])) == {
        case: index for index, fold in enumerate(splits["folds"]) for case in fold["test"]}
    assert cases["dsc"].tolist() == pytest.approx(cases["dsc/nucleus"].tolist())


def test_a_resumed_folds_run_keeps_the_folds_done_and_continues_the_one_it_reached(folds_run):
    _, run, before = folds_run
    assert (run / "fold_0" / "metrics.json").read_text() == before["fold_0"]  # not trained again
    log = pd.read_csv(run / "fold_1" / "log.csv")
    assert len(before["fold_1"]) == 1 and len(log) == 2  # epoch 0 from before the crash, then epoch 1
    pd.testing.assert_frame_equal(log.iloc[:1], before["fold_1"])
    assert len(pd.read_csv(run / "fold_2" / "log.csv")) == 2


def test_a_baseline_on_the_same_folds_is_paired_case_by_case(folds_run, tmp_path):
    _, run, _ = folds_run
    unet = tmp_path / "unet2d"
    commands.retrain_baseline("unet2d", "dsb2018", out=unet, splits_file=run / "splits.json", epochs=1,
                              **_settings())
    assert data.load_splits(unet / "splits.json")["folds"] == data.load_splits(run / "splits.json")["folds"]
    assert cli.main(["report", str(run), str(unet), "--out", str(tmp_path / "report"), "--repeats", "1"]) == 0
    paired = pd.read_csv(tmp_path / "report" / "report_paired.csv")
    assert paired.loc[0, "network"] == "searched" and paired.loc[0, "against"] == "unet2d"
    assert paired.loc[0, "same_folds"] and paired.loc[0, "verdict"] in ("wins", "ties", "loses")
    assert paired.loc[0, "params_ratio"] < 0.01  # the tiny genotype against the 9M-parameter U-Net
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"- searched {paired.loc[0, 'verdict']} against unet2d" in report
    assert (tmp_path / "report" / "report_cv_folds.png").is_file()


def test_the_fold_ensemble_predicts_the_mean_of_its_folds_probabilities(folds_run, tmp_path):
    _, run, _ = folds_run
    inputs = tmp_path / "inputs"
    for case in sorted((data.sample_root("dsb2018") / "stage1_train").iterdir())[:2]:
        shutil.copytree(case / "images", inputs / case.name / "images")
    written = {}
    for name, checkpoint, folds in (("ensemble", run, ["--folds", "0", "2"]),
                                    ("fold0", run / "fold_0" / "best.pt", []),
                                    ("fold2", run / "fold_2" / "best.pt", [])):
        assert cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs), "--output",
                         str(tmp_path / name), "--probabilities", "--tta", "--no-progress", *folds]) == 0
        written[name] = {path.name: np.asarray(Image.open(path), dtype=np.float64)
                         for path in sorted((tmp_path / name).rglob("*_prob_*"))}
    assert len(written["ensemble"]) == 2
    for key, maps in written["ensemble"].items():
        np.testing.assert_allclose(maps, (written["fold0"][key] + written["fold2"][key]) / 2, rtol=0, atol=1e-6)


def test_the_ensemble_network_is_the_mean_of_the_fold_networks(folds_run):
    _, run, _ = folds_run
    ensemble, spec = load_fold_ensemble(run)
    assert spec["ensemble"]["folds"] == [0, 1, 2]
    stack = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).numpy()
    folds = [load_network(run / f"fold_{index}" / "best.pt")[0] for index in range(FOLDS)]
    expected = torch.stack([slice_probabilities(net, stack, "sigmoid", tta=True) for net in folds]).mean(0)
    together = slice_probabilities(ensemble, stack, "sigmoid", tta=True)
    assert torch.allclose(together, expected, rtol=0, atol=1e-6)


def test_export_writes_one_module_holding_the_folds_checked_against_torch(folds_run, tmp_path):
    _, run, _ = folds_run
    report = commands.export_checkpoint(run, "onnx", tmp_path / "ensemble.onnx")
    sidecar = json.loads(report.sidecar.read_text())
    assert sidecar["ensemble"]["folds"] == [0, 1, 2] and report.max_abs_difference < 1e-4
    x = example_input(sidecar)
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    exported = torch.sigmoid(torch.from_numpy(session.run(None, {"image": x.numpy()})[0]))
    folds = [load_network(run / f"fold_{index}" / "best.pt")[0] for index in range(FOLDS)]
    with torch.no_grad():
        mean = torch.stack([torch.sigmoid(net(x)) for net in folds]).mean(0)
    assert torch.allclose(exported, mean, atol=1e-5)
    each = commands.export_each_fold(run, "onnx", tmp_path / "net.onnx", folds=[1])
    assert [r.path.name for r in each] == ["net_fold1.onnx"]


def test_fold_mistakes_are_one_line_errors(folds_run, one_line_error, tmp_path):
    genotype, run, _ = folds_run
    retrain = ["retrain", "--genotype", genotype, "--device", "cpu", "--workers", "0", "--no-progress"]
    assert "expected a fold in 0..2" in one_line_error([*retrain, "--out", run, "--resume", run, "--fold", "5"])
    assert "holds 3 folds" in one_line_error([*retrain, "--splits", run / "splits.json", "--folds", "4",
                                              "--out", tmp_path / "other"])
    assert "fold 0 already holds a run" in one_line_error([*retrain, "--folds", "3", "--out", run])
    assert "--fold needs --folds K" in one_line_error([*retrain, "--fold", "1", "--out", tmp_path / "new"])
    assert "is a single checkpoint" in one_line_error(["predict", "--checkpoint", run / "fold_0" / "best.pt",
                                                       "--input", tmp_path, "--output", tmp_path / "p",
                                                       "--folds", "0"])
    assert "no fold 3" in one_line_error(["export", "--checkpoint", run, "--format", "onnx", "--output",
                                          tmp_path / "e.onnx", "--folds", "3"])


def test_a_3d_network_cross_validates_by_regions_and_its_folds_ensemble(tmp_path):
    from tests.runs import MFSNET_LR, TINY_MFSNET

    run = tmp_path / "mfsnet"
    result = commands.retrain_model("mfsnet", out=run, folds=2, epochs=1, lr=MFSNET_LR, model_kwargs=TINY_MFSNET,
                                    **{**_settings(), "batch_size": 1})
    summary = result["metrics"]
    assert summary == json.loads((run / "cv_metrics.json").read_text()) and summary["folds"] == 2
    for region in data.BRATS_REGIONS:
        per_fold = [pd.read_csv(run / f"fold_{index}" / "test_cases.csv")[f"dice/{region}"].mean()
                    for index in range(2)]
        assert summary["mean"][f"dice/{region}"] == pytest.approx(np.mean(per_fold))
        assert f"hd95/{region}" in summary["mean"]
    cases = pd.read_csv(run / "cv_cases.csv")
    regions = cases[[f"dice/{region}" for region in data.BRATS_REGIONS]]
    assert cases["dsc"].tolist() == pytest.approx(regions.mean(axis=1).tolist())
    inputs = tmp_path / "inputs"
    case = next(path for path in sorted(data.sample_root("brats").iterdir()) if path.is_dir())
    shutil.copytree(case, inputs / case.name)
    report = commands.predict_checkpoint(run, inputs, tmp_path / "predicted", device="cpu", progress=False)
    assert len(report.predictions) == 1 and not report.failures


def test_a_restarted_worker_starts_a_folds_run_it_had_not_begun_and_keeps_the_folds_done(folds_run, tmp_path,
                                                                                          torchrun_restart):
    genotype, run, _ = folds_run
    fresh = commands.retrain_genotype(genotype, out=tmp_path / "new", folds=3, fold=0, epochs=1, **_settings())
    assert (tmp_path / "new" / "fold_0" / "metrics.json").is_file() and fresh["metrics"] is None
    kept = (run / "fold_2" / "metrics.json").read_text()
    again = commands.retrain_genotype(genotype, out=run, folds=3, fold=2, epochs=2, **_settings())
    assert again["folds"] == {} and (run / "fold_2" / "metrics.json").read_text() == kept
