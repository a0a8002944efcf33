"""``lwnas run`` on the sample BraTS volumes, every stage: from the data to the cross-validated
report and the exported fold ensemble of a 3D genotype network. Two folds of the sample's four
cases leave a fold one training case: its epoch still fills a batch (several random crops of the
case), and the folds, whose crops were drawn differently, still make one ensemble."""
import json

import pytest

import nas.run
from nas.run.networks import load_fold_ensemble
from nas.run.pipeline import STAGE_NAMES

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow

#: the smallest 3D search and retraining: 16^3 crops, 4 channels, one encoder and one decoder cell
TINY_SEARCH = {"epochs": 1, "channels": 4, "layout": "1/0/1", "crop_size": 16, "overlap": 0.0,
               "pictures": False, "num_workers": 0}
TINY_RETRAIN = {"epochs": 1, "crop_size": 16, "overlap": 0.0, "num_workers": 0}


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline-3d") / "run"
    result = nas.run.run_pipeline("brats", None, out, commands=nas.run.COMMANDS, device="cpu", progress=False,
                                  folds=2, search=TINY_SEARCH, retrain=TINY_RETRAIN,
                                  random={"tolerance": 0.5}, export={"fmt": "torchscript"})
    return out, result


def test_every_stage_runs_from_the_volumes_to_the_exported_ensemble(run_3d):
    out, result = run_3d
    assert list(result) == list(STAGE_NAMES) and {stage["status"] for stage in result.values()} == {"ran"}
    for name in ("searched", "random", "unet3d"):
        cv = json.loads((out / "retrain" / name / "cv_metrics.json").read_text())
        assert cv["folds"] == 2 and len(cv["per_fold"]) == 2
    assert (out / "report" / "report.md").is_file()
    sidecar = json.loads((out / "export" / "searched_ensemble.pt.json").read_text())
    assert sidecar["ensemble"]["folds"] == [0, 1]


def test_a_fold_with_fewer_cases_than_a_batch_draws_several_crops_per_case(run_3d):
    out, _ = run_3d
    splits = json.loads((out / "retrain" / "searched" / "splits.json").read_text())
    train_cases = [len(fold["train"]) for fold in splits["folds"]]
    assert min(train_cases) == 1  # the sample's 4 cases: 2 test, 1 validation, 1 training
    # the sampling options stay out of the description, so the two folds share one
    _, spec = load_fold_ensemble(out / "retrain" / "searched", "cpu")
    assert "crops_per_case" not in spec["preprocessing"]["options"]
    assert spec["preprocessing"]["options"]["crop_size"] == [16, 16, 16]
