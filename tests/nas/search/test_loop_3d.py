"""The search loop in 3D: crops, an evaluate callable, the levers (partial channels, progressive
shrinking, the collapse guard) and the 3D settings' checks, on synthetic volumes."""
import json

import pandas as pd
import pytest
import torch

import ops
from nas.search import SearchConfig, load_genotype, network_complexity, run_search
from nas.train import DistributedContext
from nas.train.evaluation import class_validator
from nas.train.settings import SettingError
from supernet import from_genotype
from tests.synthetic import CubesDataset, SquaresDataset


def _config(**overrides):
    values = dict(layout="1/0/1", epochs=2, channels=4, spatial_dims=3, crop_size=(8, 8, 8),
                  batch_size=2, num_workers=0, progress=False, drop_path=0.0, arch_lr=0.01)
    values.update(overrides)
    return SearchConfig.from_preset("brats", **values)


def test_3d_search_with_partial_channels_shrinking_and_the_collapse_guard(tmp_path):
    train, val = CubesDataset(6, seed=1, regions=True), CubesDataset(4, seed=2, regions=True)
    volumes = CubesDataset(2, size=12, seed=3, regions=True)
    calls = []
    validator = class_validator(volumes, (8, 8, 8), DistributedContext(), overlap=0.5)

    def evaluate(model):
        calls.append(model.training)
        return validator(model)

    config = _config(partial_channels=2, edge_normalization=True, shrink_below=0.124,
                     max_parameter_free=1, lambda_params=2000.0, lambda_flops=2000.0)
    result = run_search(config, train, val, tmp_path, evaluate=evaluate)
    assert calls == [True, True]  # once per epoch, on the model as it trains
    model = result["model"]
    assert model.spatial_dims == 3 and model.partial_channels == 2
    assert model.output_activation == "sigmoid"  # regions: sigmoid channels, not a softmax
    log = pd.read_csv(tmp_path / "log.csv")
    assert {"val_dice_cube", "val_dice_core", "val_dice_mean", "val_cases"} <= set(log.columns)
    assert (log["val_cases"] == 2).all() and log["val_dice_mean"].between(0, 1).all()
    # progressive shrinking removed ops for good, never an edge's last one
    active = list(log["active_ops"])
    assert active[-1] < 2 * 14 * 7 and active == sorted(active, reverse=True)
    for key in model.architecture.keys:
        assert model.architecture.op_mask(key).sum(1).min() >= 1
    genotype = load_genotype(tmp_path / "genotype.json")
    assert genotype == result["genotype"] and genotype.spatial_dims == 3
    # the cap on parameter-free ops held in every derived cell
    for cell in genotype.cells.values():
        assert sum(op in ops.PARAMETER_FREE_OPS for node in cell for op, _ in node) <= 1
    saved = json.loads((tmp_path / "genotype.json").read_text())
    assert saved["output_activation"] == "sigmoid"
    assert saved["complexity"]["input_shape"] == [1, 8, 8, 8]
    assert saved["complexity"]["params"] == network_complexity(genotype, (1, 8, 8, 8))["params"]
    assert saved["search"]["crop_size"] == [8, 8, 8] and saved["search"]["image_size"] is None
    network = from_genotype(genotype, output_activation=saved["output_activation"])
    assert network(torch.randn(1, 1, 12, 12, 12)).shape == (1, 2, 12, 12, 12)


def test_3d_search_resumes_exactly(tmp_path):
    train, val = CubesDataset(4, seed=1), CubesDataset(4, seed=2)
    straight = run_search(_config(), train, val, tmp_path / "straight")

    def crash(epoch, row):
        raise KeyboardInterrupt("simulated kill after epoch 0's checkpoint")

    with pytest.raises(KeyboardInterrupt):
        run_search(_config(), train, val, tmp_path / "resumed", on_epoch_end=crash)
    resumed = run_search(_config(), train, val, tmp_path / "resumed", resume=True)
    assert resumed["genotype"] == straight["genotype"]
    for key, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[key]), key
    with pytest.raises(ValueError, match=r"--crop-size: \(8, 8, 8\) -> \(8, 8, 4\)"):
        run_search(_config(crop_size=(8, 8, 4), epochs=3), train, val, tmp_path / "resumed",
                   resume=True)


def test_3d_settings_are_checked_before_any_data(tmp_path):
    with pytest.raises(SettingError, match="--crop-size must be one or three positive sizes"):
        _config(crop_size=None)
    with pytest.raises(SettingError, match="--image-size applies to 2D searches"):
        _config(image_size=64)
    with pytest.raises(SettingError, match="--space darts is a 2D comparison space"):
        _config(space="darts")
    with pytest.raises(SettingError, match="--crop-size applies to 3D searches"):
        SearchConfig.from_preset("dsb2018", image_size=16, crop_size=(8, 8, 8))
    with pytest.raises(ValueError, match="the data is 2D but the search settings are 3D"):
        run_search(_config(), SquaresDataset(4), SquaresDataset(4), tmp_path / "run")
    assert not (tmp_path / "run").exists()
