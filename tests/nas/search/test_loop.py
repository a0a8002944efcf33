"""The search loop: files, exact resume, cost penalties, collapse guard, failures."""
import json

import pandas as pd
import pytest
import torch

from nas.search import SearchConfig, load_genotype, run_search
from nas.train import NonFiniteLossError, OutputDirectoryError
from tests.synthetic import SquaresDataset


def _config(**overrides):
    values = dict(layout="1/0/1", epochs=3, channels=4, image_size=16, batch_size=2,
                  num_workers=0, progress=False, drop_path=0.0, arch_lr=0.01)
    values.update(overrides)
    return SearchConfig.from_preset("dsb2018", **values)


def _data():
    return SquaresDataset(6, seed=1), SquaresDataset(4, seed=2)


def test_search_writes_its_run_files(tmp_path):
    train, val = _data()
    result = run_search(_config(epochs=2), train, val, tmp_path)
    for name in ("genotype.json", "log.csv", "alphas.json", "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["epoch"]) == [0, 1]
    for column in ("train_loss", "val_loss", "val_dsc", "val_miou", "expected_params_M",
                   "expected_flops_G", "derived_params_M", "derived_flops_G",
                   "parameter_free_share"):
        assert log[column].notna().all(), column
    assert load_genotype(tmp_path / "genotype.json") == result["genotype"]
    alphas = json.loads((tmp_path / "alphas.json").read_text())
    assert len(alphas["epochs"]) == 2 and len(alphas["epochs"][0]["encoder"]) == 14


def _final_alphas(path):
    state = torch.load(path / "checkpoint.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if "alphas" in k}


def test_resumed_search_matches_an_uninterrupted_one(tmp_path):
    train, val = _data()
    straight = run_search(_config(), train, val, tmp_path / "straight")

    def crash(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1's checkpoint")

    with pytest.raises(KeyboardInterrupt):
        run_search(_config(), train, val, tmp_path / "resumed", on_epoch_end=crash)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = run_search(_config(), train, val, tmp_path / "resumed", resume=True)
    assert resumed["genotype"] == straight["genotype"]
    first, second = _final_alphas(tmp_path / "straight"), _final_alphas(tmp_path / "resumed")
    for key in first:
        assert torch.equal(first[key], second[key]), key
    drop = ["seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "straight" / "log.csv").drop(columns=drop),
                                  pd.read_csv(tmp_path / "resumed" / "log.csv").drop(columns=drop))


def test_resume_refuses_changed_settings(tmp_path):
    train, val = _data()
    run_search(_config(epochs=1), train, val, tmp_path)
    with pytest.raises(ValueError, match="channels"):
        run_search(_config(epochs=2, channels=8), train, val, tmp_path, resume=True)


def test_raising_the_cost_weights_lowers_the_derived_network_cost(tmp_path):
    train, val = _data()
    free = run_search(_config(lambda_params=0.0, lambda_flops=0.0), train, val, tmp_path / "a")
    costly = run_search(_config(lambda_params=2000.0, lambda_flops=2000.0), train, val,
                        tmp_path / "b")
    low, high = costly["history"][-1], free["history"][-1]
    assert low["derived_params_M"] < high["derived_params_M"]
    assert low["derived_flops_G"] < high["derived_flops_G"]
    assert low["expected_params_M"] < high["expected_params_M"]


def test_early_stop_when_skip_connections_dominate(tmp_path):
    train, val = _data()
    # a huge cost weight drives every edge to the free ops; ties go to skip_connect
    result = run_search(_config(lambda_params=1e5, lambda_flops=1e5, epochs=4,
                                early_stop_skip=3), train, val, tmp_path)
    assert result["stop_reason"].startswith("early stop")
    assert len(result["history"]) < 4
    capped = run_search(_config(lambda_params=1e5, lambda_flops=1e5, epochs=1,
                                max_parameter_free=2), train, val, tmp_path / "capped")
    assert capped["history"][-1]["parameter_free_share"] <= 2 * 3 / 24


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
    train, val = _data()

    def poison(epoch, row):
        train.poisoned = True

    with pytest.raises(NonFiniteLossError, match="epoch 1 step 0"):
        run_search(_config(), train, val, tmp_path, on_epoch_end=poison)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 0


def test_unwritable_output_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    train, val = _data()
    with pytest.raises(OutputDirectoryError, match="not writable"):
        run_search(_config(), train, val, blocker / "run")


@pytest.mark.parametrize("overrides", [dict(order=2), dict(space="darts", layout="1/1/1"),
                                       dict(partial_channels=2, edge_normalization=True)])
def test_search_variants_run(tmp_path, overrides):
    train, val = _data()
    result = run_search(_config(epochs=1, **overrides), train, val, tmp_path)
    assert load_genotype(tmp_path / "genotype.json").space == overrides.get("space", "unet")
    assert result["history"][0]["train_loss"] > 0


def test_progressive_shrinking_prunes_weak_ops_for_good(tmp_path):
    train, val = _data()
    # a strong cost penalty makes the expensive ops' weights collapse quickly
    result = run_search(_config(epochs=3, shrink_below=0.12, lambda_params=2000.0,
                                lambda_flops=2000.0), train, val, tmp_path)
    active = [row["active_ops"] for row in result["history"]]
    assert active[0] < 2 * 14 * 7 and active == sorted(active, reverse=True)
    model = result["model"]
    for key in model.architecture.keys:
        weights = model.architecture.weights(key)
        mask = model.architecture.op_mask(key)
        assert (weights[~mask] == 0).all() and mask.sum(1).min() >= 1
        for node in result["genotype"].cells[key]:
            for op, _ in node:
                assert op != "none"
    # derivation never picks a pruned op
    for key, cell in result["genotype"].cells.items():
        for node_index, node in enumerate(cell):
            for op, source in node:
                index = model.primitives.index(op)
                edge_of_choice = sum(2 + i for i in range(node_index)) + source
                assert model.architecture.op_mask(key)[edge_of_choice, index]


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    from collections import namedtuple

    import nas.train.files

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(nas.train.files.shutil, "disk_usage", lambda path: usage(2**30, 2**30, 2**20))
    train, val = _data()
    with pytest.raises(OutputDirectoryError, match="only 1 MB free"):
        run_search(_config(), train, val, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
