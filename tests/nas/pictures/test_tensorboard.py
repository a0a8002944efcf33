"""``--tensorboard``: the epoch callback writes what log.csv and alphas.json hold, and the derived
cells' pictures, into event files that TensorBoard's own reader reads back."""
import json

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator

from nas import run as commands
from nas.pictures.tensorboard import TensorBoardLogger, scalar_tag
from nas.search import SearchConfig, run_search
from nas.train import DistributedContext, evaluate_segmentation, run_retrain
from supernet import from_genotype
from tests.synthetic import SquaresDataset, retrain_config


def _events(folder):
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def _values(events, tag):
    return [event.value for event in events.Scalars(tag)]


def test_tags_group_the_log_columns():
    assert scalar_tag("train_loss") == "loss/train_loss" and scalar_tag("val_dsc") == "overlap/val_dsc"
    assert scalar_tag("expected_params_M") == "cost/expected_params_M"
    assert scalar_tag("derived_flops_G") == "cost/derived_flops_G"
    assert scalar_tag("parameter_free_share") == "collapse/parameter_free_share"
    assert scalar_tag("weight_lr") == "lr/weight_lr" and scalar_tag("lr") == "lr/lr"
    assert scalar_tag("val_dice_wt") == "overlap/val_dice_wt" and scalar_tag("novel") == "other/novel"


def test_a_search_logs_its_scalars_op_weights_and_cell_pictures(tmp_path):
    config = SearchConfig.from_preset("dsb2018", layout="1/0/1", epochs=2, channels=4, image_size=16, batch_size=2,
                                      num_workers=0, progress=False, drop_path=0.0, arch_lr=0.05)
    with TensorBoardLogger(tmp_path / "tensorboard") as logger:
        result = run_search(config, SquaresDataset(6, seed=1), SquaresDataset(4, seed=2), tmp_path,
                            on_epoch_end=logger)
    events = _events(tmp_path / "tensorboard")
    log = pd.read_csv(tmp_path / "log.csv")  # the record; TensorBoard is a view of it
    for column, tag in (("train_loss", "loss/train_loss"), ("val_loss", "loss/val_loss"),
                        ("val_dsc", "overlap/val_dsc"), ("expected_params_M", "cost/expected_params_M"),
                        ("expected_flops_G", "cost/expected_flops_G"),
                        ("parameter_free_share", "collapse/parameter_free_share"),
                        ("weight_lr", "lr/weight_lr"), ("arch_lr", "lr/arch_lr")):
        assert _values(events, tag) == pytest.approx(log[column].tolist(), rel=1e-6), tag
        assert [event.step for event in events.Scalars(tag)] == [0, 1]
    alphas = json.loads((tmp_path / "alphas.json").read_text())
    primitives = alphas["primitives"]
    for cell in ("encoder", "decoder"):
        for index, op in enumerate(primitives):
            expected = [sum(edge[index] for edge in epoch[cell]) / len(epoch[cell]) for epoch in alphas["epochs"]]
            assert _values(events, f"op_weight/{cell}/{op}") == pytest.approx(expected, rel=1e-5), (cell, op)
        images = events.Images(f"cell/{cell}")
        assert [image.step for image in images] == [0, 1] and images[0].width > 100 and images[0].height > 50
    assert "cell/middle" not in events.Tags()["images"]  # layout 1/0/1: no middle cell
    assert result["history"][0].keys() == dict(log.iloc[0]).keys()  # the log rows hold no alphas


def test_a_retrain_logs_losses_dsc_and_the_learning_rate(tmp_path, make_genotype):
    val = SquaresDataset(4, seed=2)
    loader = torch.utils.data.DataLoader(val, batch_size=2)
    context = DistributedContext()
    loss = torch.nn.BCEWithLogitsLoss()
    with TensorBoardLogger(tmp_path / "tensorboard") as logger:
        run_retrain(from_genotype(make_genotype()), retrain_config(epochs=3, batch_size=2, image_size=16),
                    SquaresDataset(6, seed=1), tmp_path,
                    lambda net: evaluate_segmentation(net, loader, loss, context.device, context), on_epoch_end=logger)
    events = _events(tmp_path / "tensorboard")
    log = pd.read_csv(tmp_path / "log.csv")
    for column, tag in (("train_loss", "loss/train_loss"), ("val_dsc", "overlap/val_dsc"), ("lr", "lr/lr")):
        assert _values(events, tag) == pytest.approx(log[column].tolist(), rel=1e-6), tag
    assert events.Tags()["images"] == []  # no genotype in a retrain's rows


def test_without_the_package_the_flag_is_one_line_before_any_data_is_read(tmp_path, monkeypatch, one_line_error):
    import importlib

    real = importlib.import_module

    def without_tensorboard(name, *args):
        if name.split(".")[0] == "tensorboard" or name == "torch.utils.tensorboard":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr("nas.train.optional.importlib.import_module", without_tensorboard)
    for argv in (["search", "--dataset", "dsb2018"], ["retrain", "--model", "unet2d", "--dataset", "dsb2018"]):
        line = one_line_error([*argv, "--tensorboard", "--out", tmp_path / "run", "--device", "cpu"])
        assert line == ("error: --tensorboard needs the tensorboard package, which is not installed; install it "
                        "with: pip install 'lwnas[tensorboard]'")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_search_command_writes_the_event_file_into_the_run(tmp_path):
    commands.search("dsb2018", out=tmp_path / "run", device="cpu", epochs=1, channels=4, layout="1/0/1",
                    batch_size=2, num_workers=0, progress=False, pictures=False, tensorboard=True)
    events = _events(tmp_path / "run" / "tensorboard")
    assert _values(events, "overlap/val_dsc") == pytest.approx(pd.read_csv(tmp_path / "run" / "log.csv")["val_dsc"])
    assert events.Images("cell/encoder")  # pictures=False skips figures/, not the TensorBoard view
