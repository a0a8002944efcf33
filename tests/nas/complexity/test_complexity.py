"""Complexity accounting: hand formulas, agreement with thop, conventions, the Table 1 CLI."""
import math

import pytest
import thop
import torch
from torch import nn

import ops
from nas import cli, complexity
from nas.complexity import paper_tables as complexity_tables


def _thop_conv_linear_macs(module: nn.Module, shape) -> float:
    """thop's count with every non-MAC layer type silenced, i.e. conv + linear MACs only."""
    silent = lambda m, x, y: None  # noqa: E731
    custom = {t: silent for t in (
        nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm,
        nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.Upsample,
        nn.Softmax)}
    macs, _ = thop.profile(module, inputs=(torch.randn(*shape),), custom_ops=custom,
                           verbose=False)
    return float(macs)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("name", sorted(set(ops.SEARCH_OPS + ops.DARTS_OPS)))
def test_op_macs_agree_with_thop(name, spatial_dims):
    shape = (1, 16) + (12,) * spatial_dims
    ours = complexity.profile(ops.build(name, 16, 1, spatial_dims), shape)["macs"]
    theirs = _thop_conv_linear_macs(ops.build(name, 16, 1, spatial_dims), shape)
    assert ours == pytest.approx(theirs, rel=0.01, abs=1)
    if name not in ops.PARAMETER_FREE_OPS:
        assert ours > 0


@pytest.mark.parametrize("name", ["mf", "mfs", "dmf", "mf_res2", "res2", "resnet_gn"])
def test_unit_macs_and_params_agree_with_thop(name):
    shape = (1, 32, 8, 8, 8)
    ours = complexity.profile(ops.build_unit(name, 3, 32, 64, 2), shape)
    macs = _thop_conv_linear_macs(ops.build_unit(name, 3, 32, 64, 2), shape)
    assert ours["macs"] == pytest.approx(macs, rel=0.01)
    # thop sums leaf parameters only; ours also counts DMF's learned dilation weights
    unit = ops.build_unit(name, 3, 32, 64, 2)
    leaf_params = sum(p.numel() for m in unit.modules() if next(m.children(), None) is None
                      for p in m.parameters(recurse=False))
    assert ours["params"] == leaf_params + (3 if name == "dmf" else 0)


def test_conv_macs_by_hand_formula():
    layer = nn.Conv3d(8, 12, kernel_size=(3, 3, 1), stride=2, padding=(1, 1, 0), groups=4)
    counts = complexity.profile(layer, (2, 8, 10, 10, 10))
    out_elements = 2 * 12 * 5 * 5 * 5
    assert counts["macs"] == out_elements * (8 // 4) * 9
    assert counts["params"] == 12 * 2 * 9 + 12  # weights + bias


def test_transposed_conv_counts_input_side():
    # a 2x2 stride-2 transposed conv spreads each input value over 2x2 outputs per channel
    layer = nn.ConvTranspose2d(6, 4, 2, stride=2)
    counts = complexity.profile(layer, (1, 6, 5, 5))
    assert counts["macs"] == 6 * 5 * 5 * 4 * 4


def test_flop_conventions_by_hand():
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4),
                        nn.Upsample(scale_factor=2, mode="trilinear"))
    counts = complexity.profile(net, (1, 2, 4, 4, 4))
    macs = 4 * 64 * 2 * 27
    assert counts["macs"] == counts["flops"] == macs
    assert counts["norm_elements"] == 4 * 64 and counts["upsample_elements"] == 4 * 512
    assert complexity.flops_by_convention(counts, "thop_0.0.31") == macs + 2 * 256
    assert complexity.flops_by_convention(counts, "dmfnet") == macs + 2 * 256 + 2048
    with pytest.raises(ValueError, match="convention"):
        complexity.flops_by_convention(counts, "gpu")


def test_meta_device_counts_like_cpu():
    shape = (1, 16, 16, 16)
    cpu = complexity.profile(ops.build("sk", 16), shape)
    with torch.device("meta"):
        meta_op = ops.build("sk", 16)
    assert complexity.profile(meta_op, shape) == cpu


def test_profile_layers_and_summary_add_up():
    net = nn.Sequential(ops.build("sep_conv_3x3", 8), ops.build("ghost", 8))
    records = complexity.profile_layers(net, (1, 8, 10, 10))
    table = complexity.summarize_layers(records, depth=1)
    assert list(table["group"]) == ["0", "1"]
    totals = complexity.profile(net, (1, 8, 10, 10))
    assert table["macs"].sum() == totals["macs"] and table["params"].sum() == totals["params"]


def test_activation_memory_scales_with_input_area():
    op = ops.build("sep_conv_3x3", 8)
    small = complexity.activation_memory(op, (2, 8, 16, 16))
    large = complexity.activation_memory(op, (2, 8, 32, 32))
    assert small > 0 and large / small == pytest.approx(4.0, rel=0.1)


def test_latency_is_positive_and_restores_mode():
    op = ops.build("ghost", 8).train()
    timing = complexity.measure_latency(op, (1, 8, 16, 16), warmup=1, repeats=3)
    assert timing["median_ms"] > 0 and op.training
    timing = complexity.measure_latency(op, (1, 8, 16, 16), warmup=0, repeats=2, backward=True)
    assert timing["mean_ms"] > 0 and all(p.grad is None for p in op.parameters())


def test_table1_cli_prints_every_op_beside_the_seed(tmp_path, capsys):
    csv = tmp_path / "table1.csv"
    assert cli.main(["complexity", "ops", "--size", "32", "--channels", "32", "--csv", str(csv)]) == 0
    printed = capsys.readouterr().out
    for name in ops.SEARCH_OPS:
        assert name in printed
    import pandas as pd

    frame = pd.read_csv(csv)
    search = frame[frame["space"] == "search"].set_index("op")
    # the five parametrised ops land within 10% of the seed's Table 1, params and FLOPs
    for name, (params, flops) in complexity_tables.SEED_TABLE1_SEARCH.items():
        assert search.loc[name, "params_k"] * 1e3 == pytest.approx(params, rel=0.1)
        assert search.loc[name, "flops_M"] * 1e6 == pytest.approx(flops, rel=0.1)
    average = search.loc["average (ops with params)"]
    assert average["params_k"] == pytest.approx(1.54, rel=0.05)
    assert average["flops_M"] == pytest.approx(1.11, rel=0.05)
    assert cli.main(["complexity", "ops", "--markdown"]) == 0
    assert "| search" in capsys.readouterr().out
    assert math.isclose(search.loc["none", "params_k"], 0.0)
