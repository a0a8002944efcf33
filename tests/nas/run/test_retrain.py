"""Retraining a derived network: on the sample data, from a genotype file, with exact resume."""
import json

import pandas as pd
import pytest
import torch

import data
from nas import run as commands
from nas.search import network_complexity, save_genotype
from nas.train import DistributedContext, evaluate_segmentation, run_retrain
from supernet import from_genotype
from tests.synthetic import SquaresDataset, retrain_config

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def genotype(make_genotype):
    return make_genotype(in_channels=3)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, genotype):
    root = tmp_path_factory.mktemp("retrain")
    genotype_path = save_genotype(root / "search" / "genotype.json", genotype,
                                  dataset="dsb2018", search={"image_size": 48})
    # a splits.json beside the genotype: retraining must reuse exactly these cases
    cases = data.get_dataset("dsb2018", split="train", image_size=48).splits
    data.save_splits(root / "search" / "splits.json", cases)
    result = commands.retrain_genotype(genotype_path, out=root / "run", device="cpu", epochs=8,
                                       batch_size=2, num_workers=0, progress=False)
    return root, result


def test_retraining_on_sample_data_improves_validation_dsc(retrained):
    root, result = retrained
    log = pd.read_csv(root / "run" / "log.csv")
    assert len(log) == 8
    assert log["val_dsc"].max() > log["val_dsc"].iloc[0] + 0.2
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]


def test_metrics_file_reports_test_scores_and_complexity(retrained, genotype):
    root, _ = retrained
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    expected = network_complexity(genotype, (3, 48, 48))
    assert metrics["params"] == expected["params"] and metrics["flops"] == expected["flops"]
    assert 0.0 <= metrics["miou"] <= metrics["dsc"] <= 1.0 and metrics["test_images"] > 0
    best = torch.load(root / "run" / "best.pt", weights_only=True)
    assert best["epoch"] == metrics["best_epoch"]
    network = from_genotype(genotype)
    network.load_state_dict(best["model"])  # the best checkpoint rebuilds the network


def test_retrain_reuses_the_search_splits(retrained):
    root, _ = retrained
    assert data.load_splits(root / "run" / "splits.json") == data.load_splits(
        root / "search" / "splits.json")


def _retrain(genotype, out, epochs=3, on_epoch_end=None, resume=False):
    torch.manual_seed(0)
    model = from_genotype(genotype, drop_path_rate=0.1)
    val = SquaresDataset(4, seed=2)
    loader = torch.utils.data.DataLoader(val, batch_size=2)
    loss = torch.nn.BCEWithLogitsLoss()
    context = DistributedContext()
    config = retrain_config(epochs=epochs, batch_size=2, image_size=16)
    return run_retrain(model, config, SquaresDataset(6, seed=1), out,
                       lambda net: evaluate_segmentation(net, loader, loss, context.device, context),
                       on_epoch_end=on_epoch_end, resume=resume)


def test_resumed_retrain_matches_an_uninterrupted_one(tmp_path, make_genotype):
    genotype = make_genotype()
    straight = _retrain(genotype, tmp_path / "a")

    def crash(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _retrain(genotype, tmp_path / "b", on_epoch_end=crash)
    resumed = _retrain(genotype, tmp_path / "b", resume=True)
    for key in ("train_loss", "val_loss", "val_dsc"):
        assert [r[key] for r in straight["history"]] == [r[key] for r in resumed["history"]]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
