"""``retrain.py --model unet2d --dataset NAME``: the plain 2D U-Net trained on the same splits with
the same retrain settings as a genotype network, writing the same metrics.json and a
self-describing best.pt that lwnas predict and export take."""
import json

import pandas as pd
import pytest

import data
import models
from nas import cli
from nas import run as commands
from nas.run.networks import load_network
from nas.search import network_complexity
from nas.train import load_checkpoint

#: end-to-end runs of real commands (still run by `make test`)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(retrained_2d):
    return retrained_2d("dsb2018")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, searched):
    out = tmp_path_factory.mktemp("unet2d") / "run"
    assert cli.main(["retrain", "--model", "unet2d", "--dataset", "dsb2018", "--splits", str(searched / "splits.json"),
                     "--epochs", "1", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--no-progress",
                     "--out", str(out)]) == 0
    return out


def test_the_baseline_trains_on_the_searched_networks_splits_with_its_settings(searched, baseline):
    assert data.load_splits(baseline / "splits.json") == data.load_splits(searched / "splits.json")
    ours, theirs = load_checkpoint(baseline / "best.pt")["config"], load_checkpoint(searched / "best.pt")["config"]
    differing = {key for key in ours if ours[key] != theirs[key]}
    assert differing == {"model", "drop_path"}  # the network, and drop-path (genotype networks only)
    assert ours["model"] == "unet2d" and ours["drop_path"] == 0.0


def test_metrics_json_has_the_genotype_retrains_form(searched, baseline):
    ours = json.loads((baseline / "metrics.json").read_text())
    theirs = json.loads((searched / "metrics.json").read_text())
    assert set(ours) - {"model"} == set(theirs) - {"genotype"}
    network = models.plain_unet(3, 1, 2)
    assert ours["model"] == "unet2d" and ours["input_shape"] == [3, 64, 64]
    assert ours["params"] == sum(p.numel() for p in network.parameters())
    assert ours["flops"] == network_complexity(network, (3, 64, 64))["flops"]
    assert 0.0 <= ours["miou"] <= ours["dsc"] <= 1.0 and ours["test_images"] == theirs["test_images"]


def test_the_baseline_checkpoint_predicts_and_exports(baseline, tmp_path):
    network, spec = load_network(baseline / "best.pt")
    assert spec["network"] == {"kind": "model", "name": "unet2d", "kwargs": {"spatial_dims": 2}, "in_channels": 3,
                               "num_classes": 1}
    case = data.find_dsb2018_cases(data.sample_root("dsb2018"))[0]
    report = commands.predict_checkpoint(baseline / "best.pt", case, tmp_path / "out", device="cpu", model="unet2d",
                                         progress=False)
    assert [p.name for p in report.predictions] == [f"{case.name}.png"] and len(report.metrics_files) == 2


def test_default_splits_are_the_datasets_seeded_ones(tmp_path):
    result = commands.retrain_baseline("unet2d", "dsb2018", out=tmp_path / "run", device="cpu", epochs=1,
                                       batch_size=4, num_workers=0, progress=False, seed=3)
    expected = data.get_dataset("dsb2018", split="train", seed=3).splits
    assert data.load_splits(tmp_path / "run" / "splits.json") == expected
    assert result["metrics"]["model"] == "unet2d"


def test_settings_that_do_not_fit_are_refused_in_one_line(tmp_path, one_line_error):
    line = one_line_error(["retrain", "--model", "unet2d", "--out", tmp_path / "run"])
    assert line == "error: --model unet2d needs --dataset (a 2D data set, e.g. chaos, dsb2018, promise12 or nnunet)"
    line = one_line_error(["retrain", "--model", "unet2d", "--dataset", "brats", "--out", tmp_path / "run"])
    assert line.startswith("error: --model unet2d is a 2D network; dataset 'brats' is 3D")
    line = one_line_error(["retrain", "--model", "unet2d", "--dataset", "dsb2018", "--drop-path", "0.1",
                           "--out", tmp_path / "run"])
    assert line == ("error: --drop-path does not apply to --model unet2d: drop-path applies to genotype networks "
                    "only")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["retrain", "--model", "unet2d", "--dataset", "dsb2018", "--crop-size", "32"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "run").exists()


def test_the_report_times_the_baseline_beside_the_searched_network(searched, baseline, tmp_path, monkeypatch):
    """A baseline has no genotype: the report rebuilds it from its best.pt for its latency and memory."""
    from nas.complexity import activation_memory
    from nas.pictures import comparison

    timed = []
    monkeypatch.setattr(comparison, "measure_latency",
                        lambda network, shape, **_: timed.append(type(network).__name__) or {"median_ms": 1.0})
    assert cli.main(["report", str(searched), str(baseline), "--out", str(tmp_path / "report"), "--repeats", "1"]) == 0
    table = comparison.compare_runs([searched, baseline])["retrained"]  # without the checkpoint: no network
    assert table["latency_ms"].isna().tolist() == [False, True]
    rows = pd.read_csv(tmp_path / "report" / "report_retrained.csv").set_index("label")
    unet = models.plain_unet(3, 1, 2).eval()
    assert rows.loc["unet2d", "memory_MB"] == pytest.approx(activation_memory(unet, (1, 3, 64, 64)) / 2**20)
    assert rows.loc["unet2d", "latency_ms"] == 1.0 and timed.count(type(unet).__name__) == 1
