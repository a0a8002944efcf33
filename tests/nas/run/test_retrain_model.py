"""Training the hand-designed 3D networks on the sample BraTS data: whole-volume
validation, self-describing checkpoints, the test-split metrics and ``retrain.py --model``."""
import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import data
import models
from nas import cli, losses
from nas import run as brats_commands
from nas.run.brats import evaluate_volumes
from nas.train import init_distributed, load_checkpoint, shutdown_distributed
from tests.runs import MFSNET_EPOCHS as EPOCHS
from tests.runs import TINY_MFSNET, train_tiny_mfsnet

#: end-to-end runs of real commands and processes (still run by `make test`)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(brats_run):
    return brats_run


def _volume_loss(network, cases, loss):
    """The loss on whole training volumes (eval mode), one fixed definition."""
    network.eval()
    values = []
    with torch.no_grad():
        for case in cases:
            image, label, _ = data.read_brats_case(case)
            target = torch.from_numpy(data.brats_labels_to_index(label))[None]
            values.append(float(loss(network(torch.from_numpy(image)[None]), target)))
    return float(np.mean(values))


def _learning(out, seed):
    """(loss drop on the whole training volumes from the seed's initial weights to best.pt,
    validation Dice gain from the first epoch to the best) of a run."""
    splits = data.load_splits(out / "splits.json")
    cases = [c for c in data.find_brats_cases(data.sample_root("brats")) if c.name in splits["train"]]
    assert len(cases) == 2
    # The mixed loss's Jaccard share grows with the epoch (a = epoch / N), so the logged
    # values are not comparable across epochs; score both weights with a = 0 instead.
    loss = losses.build("mixed_dice_jaccard")
    loss.set_epoch(0, EPOCHS)
    torch.manual_seed(seed)  # retrain_model's initial weights depend on the seed only
    initial = models.build("mfsnet", **TINY_MFSNET)
    trained, _ = brats_commands.load_model_checkpoint(out / "best.pt")
    log = pd.read_csv(out / "log.csv")
    return (_volume_loss(initial, cases, loss) - _volume_loss(trained, cases, loss),
            log["val_dice_mean"].max() - log["val_dice_mean"].iloc[0])


def test_training_lowers_the_loss_and_raises_the_validation_dice(run, tmp_path):
    """Where a tiny net on two cases gets to in EPOCHS epochs depends on the seed, and so on the
    CPU's rounding: at 20 epochs one seed in six barely moved. So: 40 epochs, the median of 3
    seeds. Measured over seeds 0-5: loss drop 0.37-0.85, validation Dice gain 0.27-0.70."""
    out, _ = run
    learnt = [_learning(out, 0)]
    for seed in (1, 2):
        train_tiny_mfsnet(tmp_path / f"seed{seed}", seed=seed)
        learnt.append(_learning(tmp_path / f"seed{seed}", seed))
    loss_drop, dice_gain = np.median(learnt, axis=0)
    assert loss_drop > 0.2 and dice_gain > 0.2, learnt


def test_run_writes_log_checkpoints_and_test_metrics(run):
    out, result = run
    for name in ("best.pt", "checkpoint.pt", "log.csv", "metrics.json", "splits.json",
                 "test_cases.csv", "test_summary.csv"):
        assert (out / name).is_file(), name
    log = pd.read_csv(out / "log.csv")
    assert len(log) == EPOCHS
    assert {"val_dice_wt", "val_dice_tc", "val_dice_et", "val_dice_mean"} <= set(log.columns)
    mean = log[["val_dice_wt", "val_dice_tc", "val_dice_et"]].mean(axis=1)
    assert np.allclose(mean, log["val_dice_mean"])
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == int(log["val_dice_mean"].idxmax())  # kept by val_dice_mean
    metrics = json.loads((out / "metrics.json").read_text())
    test_cases = data.load_splits(out / "splits.json")["test"]
    table = pd.read_csv(out / "test_cases.csv")
    assert list(table["case"]) == test_cases and metrics["test_cases"] == len(test_cases)
    for metric in ("dice", "hd95"):
        for region in ("WT", "TC", "ET"):
            assert metrics[metric][region] == pytest.approx(table[f"{metric}/{region}"].mean())
    assert 0 < metrics["dice"]["mean"] <= 1 and metrics["hd95"]["WT"] >= 0
    assert metrics["best_epoch"] == best["epoch"] and metrics["et_threshold"] == 400
    assert metrics["params"] == sum(p.numel() for p in models.build("mfsnet", **TINY_MFSNET)
                                    .parameters())


def test_best_checkpoint_rebuilds_the_network_from_its_metadata_alone(run):
    out, _ = run
    state = torch.load(out / "best.pt", weights_only=True)
    spec = state["spec"]  # the one description: predict and --resume read it
    assert spec["network"] == {"kind": "model", "name": "mfsnet", "kwargs": TINY_MFSNET, "in_channels": 4,
                                "num_classes": 4, "output_activation": "softmax"}
    assert spec["input"]["size"] == [32, 32, 32]
    assert spec["preprocessing"]["options"]["target"] == "index" and spec["input"]["channels"] == [
        "flair", "t1", "t1ce", "t2"]
    network, _ = brats_commands.load_model_checkpoint(out / "best.pt")
    assert isinstance(network, models.MultiFiberNet) and not network.training
    rebuilt = network.state_dict()
    assert rebuilt.keys() == state["model"].keys()
    assert all(torch.equal(rebuilt[key], state["model"][key]) for key in rebuilt)


def test_vae_network_trains_on_regions_with_the_crop_as_input_size(tmp_path):
    out = tmp_path / "vae"
    result = brats_commands.retrain_model(
        "vae_unet", out=out, device="cpu", epochs=1, num_workers=0, progress=False,
        model_kwargs={"base_channels": 8})
    state = load_checkpoint(out / "best.pt")
    assert state["spec"]["network"]["kwargs"]["input_size"] == [32, 32, 32]
    assert state["spec"]["network"]["output_activation"] == "sigmoid"
    assert state["spec"]["preprocessing"]["options"]["target"] == "regions" and state["config"]["loss"] == "vae"
    assert state["config"]["lr"] == 1e-4 and state["config"]["batch_size"] == 2  # sample
    assert np.isfinite(result["history"][0]["train_loss"])
    network, _ = brats_commands.load_model_checkpoint(out / "best.pt")
    assert isinstance(network, models.VAEUNet)


def test_resume_continues_with_the_saved_network(tmp_path):
    common = dict(out=tmp_path / "run", device="cpu", num_workers=0, progress=False)
    brats_commands.retrain_model("mfsnet", epochs=1, model_kwargs=TINY_MFSNET, **common)
    # no model_kwargs: the network of the run's checkpoint is rebuilt, not the default one
    result = brats_commands.retrain_model("mfsnet", epochs=2, resume=True, **common)
    assert [row["epoch"] for row in result["history"]] == [0, 1]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["spec"]["network"]["kwargs"] == TINY_MFSNET
    with pytest.raises(FileExistsError, match="already holds a run"):
        brats_commands.retrain_model("mfsnet", epochs=1, model_kwargs=TINY_MFSNET, **common)


def test_settings_that_do_not_apply_are_refused(tmp_path):
    with pytest.raises(ValueError, match="2D"):
        brats_commands.retrain_model("mfsnet", "dsb2018", out=tmp_path / "a", device="cpu")
    with pytest.raises(ValueError, match="crop_size"):
        brats_commands.retrain_model("mfsnet", out=tmp_path / "b", device="cpu", image_size=64)
    with pytest.raises(ValueError, match="genotype"):
        brats_commands.retrain_model("mfsnet", out=tmp_path / "c", device="cpu", drop_path=0.1)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_cli_trains_a_model_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    options = [f"--model-option={key}={value}" for key, value in TINY_MFSNET.items()]
    assert cli.main(["retrain", "--model", "mfsnet", "--dataset", "brats", "--epochs", "1",
                         "--crop-size", "16x32x16", "--out", str(out), "--device", "cpu",
                         "--workers", "0", "--no-progress", *options]) == 0
    state = load_checkpoint(out / "best.pt")
    assert state["spec"]["network"]["kwargs"] == TINY_MFSNET and state["spec"]["input"]["size"] == [16, 32, 16]
    assert state["config"]["epochs"] == 1 and state["config"]["loss"] == "mixed_dice_jaccard"
    assert (out / "metrics.json").is_file()
    assert "test Dice WT" in capsys.readouterr().out


def _validation_rows(context=None):
    torch.manual_seed(0)
    network = models.build("mfsnet", **TINY_MFSNET)
    cases = data.get_dataset("brats", None, "val", val_fraction=0.5, target="labels")
    return evaluate_volumes(network, cases, (32, 32, 32), context=context)


def _rows_on_rank(rank, port, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    try:
        Path(out, f"{rank}.json").write_text(json.dumps(_validation_rows(context)))
    finally:
        shutdown_distributed()


def test_ranks_share_the_validation_cases_and_return_the_same_rows(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_rows_on_rank, args=(port, str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in range(2)]
    single = _validation_rows()
    assert len(single) == 2  # one case per rank, gathered once each
    assert ranks[0] == ranks[1] == json.loads(json.dumps(single))
