"""``--resume`` continues the run it names, as it was started: another setting (but a longer or
shorter ``--epochs``) or other data is refused in one line naming every difference, before any
case is prepared; ``--resume RUN --out OTHER`` is refused, not ignored."""
import shutil

import pytest
import torch

import data
from nas.train import DistributedContext, evaluate_segmentation, run_retrain
from supernet import from_genotype
from tests.synthetic import SquaresDataset, retrain_config

CPU = DistributedContext()
#: a one-epoch search of the sample DSB2018 data, small enough for seconds
SEARCH = ["search", "--dataset", "dsb2018", "--epochs", "1", "--layout", "1/0/1", "--channels", "4",
          "--image-size", "32", "--workers", "0", "--no-pictures", "--no-progress", "--device", "cpu"]


def test_changed_settings_names_every_difference_but_the_allowed_ones():
    from nas.train.checkpoints import changed_settings

    recorded = {"lambda_params": 0.015, "epochs": 3, "loss": "bce_dice", "crop_size": (32, 32, 32),
                "budget_params": None, "num_workers": 0}
    given = {**recorded, "lambda_params": 0.5, "epochs": 9, "crop_size": [32, 32, 32], "budget_params": 0.2,
             "num_workers": 4, "loss": "dice", "added_later": 1}
    assert changed_settings(recorded, given, may_change=("epochs", "num_workers")) == [
        "--lambda-params: 0.015 -> 0.5", "--loss: 'bce_dice' -> 'dice'", "--budget-params: None -> 0.2"]
    assert changed_settings(recorded, recorded) == []


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A one-epoch search on a copy of the sample data, and that copy."""
    root = tmp_path_factory.mktemp("resume")
    data_root = root / "dsb"
    shutil.copytree(data.sample_root("dsb2018"), data_root)
    from nas import cli

    assert cli.main([*SEARCH, "--data-root", str(data_root), "--out", str(root / "run")]) == 0
    return root / "run", data_root


def _copy_run(run, target):
    shutil.copytree(run, target)
    (target / ".lock").unlink(missing_ok=True)
    return target


def test_a_search_resumed_with_other_settings_is_refused_naming_each(searched, tmp_path, monkeypatch,
                                                                      one_line_error):
    run, data_root = searched
    run = _copy_run(run, tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()
    monkeypatch.setattr(data, "get_dataset", lambda *args, **kwargs: pytest.fail("a case was prepared"))
    changed = ["--lambda-params", "0.5", "--lambda-flops", "0.2", "--lambda-memory", "0.1",
               "--budget-params", "0.3", "--weight-lr", "0.01", "--arch-lr", "0.001", "--loss", "dice",
               "--drop-path", "0.1", "--warmup-epochs", "1", "--epochs", "2"]
    line = one_line_error([*SEARCH, "--data-root", data_root, "--resume", run, *changed])
    assert line.startswith(f"error: {run / 'checkpoint.pt'}: cannot resume: the settings differ (")
    for difference in ("--lambda-params: 0.015 -> 0.5", "--lambda-flops: 0.005 -> 0.2", "--lambda-memory: 0.0 -> 0.1",
                       "--budget-params: None -> 0.3", "--weight-lr: 0.005 -> 0.01", "--arch-lr: 0.0006 -> 0.001",
                       "--loss: 'bce_dice' -> 'dice'", "--drop-path: 0.3 -> 0.1", "--warmup-epochs: 0 -> 1"):
        assert difference in line, difference
    assert "--epochs:" not in line  # another --epochs is the documented extension
    assert (run / "checkpoint.pt").read_bytes() == before


def test_a_search_resumes_with_more_epochs_on_the_same_data_moved(searched, tmp_path):
    from nas import cli

    run, data_root = searched
    run = _copy_run(run, tmp_path / "run")
    moved = shutil.copytree(data_root, tmp_path / "moved")  # the same files in another place
    assert cli.main([*SEARCH, "--data-root", str(moved), "--resume", str(run), "--epochs", "2"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_search_resumed_on_other_data_is_refused_before_any_case_is_prepared(searched, tmp_path, monkeypatch,
                                                                                 one_line_error):
    run, data_root = searched
    run = _copy_run(run, tmp_path / "run")
    other = shutil.copytree(data_root, tmp_path / "other")
    images = sorted(other.rglob("images/*.png"))
    images[0].write_bytes(images[1].read_bytes())  # one case's image is another's now
    monkeypatch.setattr(data, "get_dataset", lambda *args, **kwargs: pytest.fail("a case was prepared"))
    line = one_line_error([*SEARCH, "--data-root", other, "--resume", run])
    case = images[0].parent.parent.name
    splits = data.load_splits(run / "splits.json")
    cases = sum(len(splits[split]) for split in ("train", "val", "test"))
    assert line == (f"error: {run / 'checkpoint.pt'}: cannot resume: the data differ (the run was trained on "
                    f"{data_root.resolve()}; under {other.resolve()} the files of 1 of its {cases} cases differ, "
                    f"e.g. {case}); give --resume the data it was trained on (--data-root), or start a new run "
                    "with another --out")


def test_resume_with_another_out_is_refused(searched, tmp_path, one_line_error, make_genotype):
    run, _ = searched
    other = tmp_path / "other"
    line = one_line_error([*SEARCH, "--resume", run, "--out", other])
    assert line == (f"error: --resume {run} --out {other}: a resumed run continues in its own directory; "
                    f"drop --out, or start a new run in {other} without --resume")
    line = one_line_error(["retrain", "--genotype", run / "genotype.json", "--resume", run, "--out", other])
    assert line.startswith(f"error: --resume {run} --out {other}: a resumed run continues in its own directory")
    assert not other.exists()


def test_a_retrain_resumed_with_another_learning_rate_is_refused(tmp_path, make_genotype):
    val = torch.utils.data.DataLoader(SquaresDataset(4, seed=2), batch_size=2)
    loss = torch.nn.BCEWithLogitsLoss()

    def train(resume, **settings):
        model = from_genotype(make_genotype())
        config = retrain_config(batch_size=2, image_size=16, **settings)
        return run_retrain(model, config, SquaresDataset(6, seed=1), tmp_path,
                           lambda net: evaluate_segmentation(net, val, loss, CPU.device, CPU),
                           resume=resume)

    train(False, epochs=1)
    with pytest.raises(ValueError) as error:
        train(True, epochs=2, lr=0.01, loss="dice")
    assert str(error.value).startswith(f"{tmp_path / 'checkpoint.pt'}: cannot resume: the settings differ "
                                       "(--lr: 0.006 -> 0.01; --loss: 'bce_dice' -> 'dice')")
    assert len(train(True, epochs=2)["history"]) == 2
