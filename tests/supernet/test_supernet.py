"""Mixed op, search cells, supernets and the fixed network built from a genotype."""
import pytest
import torch
from torch import nn

import ops
import supernet
from supernet import DartsSupernet, MixedOp, USupernet, from_genotype


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(0)
    mixed = MixedOp(8, 1, 2).eval()
    x = torch.randn(2, 8, 6, 6)
    weights = torch.softmax(torch.randn(len(ops.SEARCH_OPS)), 0)
    expected = sum(w * op(x) for w, op in zip(weights, mixed.ops))
    assert torch.allclose(mixed(x, weights), expected, atol=1e-6)


class _Exploding(nn.Module):
    def forward(self, x):
        raise AssertionError("a zero-weight op was run")


def test_mixed_op_skips_zero_weight_ops_and_none():
    mixed = MixedOp(8, 1, 2).eval()
    skipped = ops.SEARCH_OPS.index("sk")
    mixed.ops[skipped] = _Exploding()
    mixed.ops[ops.SEARCH_OPS.index("none")] = _Exploding()
    weights = torch.full((8,), 1 / 7)
    weights[skipped] = 0.0
    out = mixed(torch.randn(1, 8, 5, 5), weights)
    assert out.shape == (1, 8, 5, 5)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_channels_route_only_a_fraction_through_the_ops(stride):
    torch.manual_seed(0)
    mixed = MixedOp(16, stride, 2, partial_channels=4).eval()
    assert all(isinstance(m, nn.Identity) or getattr(m, "in_channels", 4) <= 4
               for op in mixed.ops for m in op.modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(1, 16, 8, 8)
    weights = torch.softmax(torch.randn(8), 0)
    out = mixed(x, weights)
    assert out.shape == (1, 16, 8 // stride, 8 // stride)
    # bypassed channels come out unchanged (max-pooled at stride 2), shuffled into place
    bypass = x[:, 4:] if stride == 1 else nn.functional.max_pool2d(x[:, 4:], 2)
    shuffled = ops.channel_shuffle(torch.cat([torch.zeros_like(bypass[:, :4]), bypass], 1), 4)
    positions = [i for i in range(16) if i % 4 != 0]
    assert torch.equal(out[:, positions], shuffled[:, positions])


@pytest.mark.parametrize("spatial_dims,size", [(2, (37, 45)), (3, (12, 16, 9))])
def test_usupernet_output_matches_input_size(spatial_dims, size):
    torch.manual_seed(0)
    net = USupernet(2, 3, channels=8, layout="2/1/2", spatial_dims=spatial_dims)
    x = torch.randn(1, 2, *size)
    y = net(x)
    assert y.shape == (1, 3) + size
    y.mean().backward()
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_alphas_are_named_parameters_split_from_weights():
    net = USupernet(3, 1, channels=8, layout="2/3/2")
    state = net.state_dict()
    for key in ("encoder", "middle", "decoder"):
        assert state[f"architecture.alphas.{key}"].shape == (14, 8)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert arch and weights and not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    per_cell = USupernet(3, 1, channels=8, layout="2/3/2", alpha_sharing="cell")
    assert len(per_cell.arch_parameters()) == 7
    assert USupernet(3, 1, 8, "2/3/2", edge_normalization=True).arch_parameters()[-1].shape == (14,)


def test_layout_parsing_and_errors():
    assert supernet.parse_layout("3/2/3") == {"encoder": 3, "middle": 2, "decoder": 3}
    with pytest.raises(ValueError, match="layout"):
        supernet.parse_layout("3/2")
    with pytest.raises(ValueError, match="decoder"):
        supernet.parse_layout((2, 1, 3))


def test_dataset_layouts_give_the_spec_cell_counts():
    for layout, cells in (("2/3/2", 7), ("3/3/3", 9), ("3/2/3", 8)):
        net = USupernet(1, 1, channels=4, layout=layout)
        assert len(net.cells) == cells
        assert net.cell_types.count("encoder") == int(layout[0])


def test_pruned_op_weighs_exactly_zero_and_is_not_run():
    net = USupernet(1, 1, channels=8, layout="1/0/1")
    sk = ops.SEARCH_OPS.index("sk")
    for key in net.architecture.keys:
        for edge in range(14):
            net.architecture.prune(key, edge, sk)
    state = net.state_dict()
    for cell in net.cells:
        for edge in cell.edges:
            edge.ops[sk] = _Exploding()
    assert net(torch.randn(1, 1, 8, 8)).shape == (1, 1, 8, 8)
    assert (net.architecture.weights("encoder")[:, sk] == 0).all()
    # the mask is part of the state: a reloaded net skips the same ops
    clone = USupernet(1, 1, channels=8, layout="1/0/1")
    clone.load_state_dict(state)
    assert sk not in clone.architecture.active("decoder")[0]


def test_darts_supernet_reduces_at_thirds():
    net = DartsSupernet(3, 1, channels=8, num_cells=6)
    assert supernet.reduction_positions(6) == (2, 4)
    assert net.cell_types == ("normal", "normal", "reduce", "normal", "reduce", "normal")
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def _genotype(space="unet"):
    cell = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 2)),
            (("dil_conv_3x3", 1), ("max_pool_3x3", 3)), (("shuffle_conv_3x3", 4), ("ghost", 0)))
    if space == "unet":
        types = ("encoder",) * 2 + ("middle",) + ("decoder",) * 2
        return supernet.Genotype("unet", {k: cell for k in set(types)}, types,
                                 {"encoder": 2, "middle": 1, "decoder": 2}, 8, 3, 1,
                                 primitives=ops.SEARCH_OPS)
    types = ("normal", "reduce", "normal", "reduce", "normal")
    return supernet.Genotype("darts", {"normal": cell, "reduce": cell}, types, {"cells": 5}, 8,
                             3, 2, primitives=ops.SEARCH_OPS)


def test_fixed_network_from_genotype_runs_its_ops():
    torch.manual_seed(0)
    net = supernet.from_genotype(_genotype(), drop_path_rate=0.2)
    assert isinstance(net, supernet.FixedUNet)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"SeparableConv", "GhostModule", "SelectiveKernel", "ShuffleUnit"} <= kinds
    assert "MixedOp" not in kinds
    x = torch.randn(2, 3, 16, 16)
    net(x).mean().backward()
    net.eval()
    assert torch.equal(net(x), net(x))  # no drop-path at evaluation
    net.train()
    torch.manual_seed(1)
    first = net(x)
    torch.manual_seed(2)
    assert not torch.equal(first, net(x))  # drop-path samples differ in training
    darts = supernet.from_genotype(_genotype("darts"))
    assert darts(x).shape == (2, 2, 16, 16)


def test_fixed_network_has_the_supernet_macro():
    genotype = _genotype()
    fixed = supernet.from_genotype(genotype)
    search = USupernet(3, 1, channels=8, layout="2/1/2")
    assert fixed.cell_widths == search.cell_widths and fixed.cell_levels == search.cell_levels


def test_output_activation_is_the_default_of_the_classes_unless_given(make_genotype):
    genotype = make_genotype(channels=4, in_channels=4, num_classes=3)
    assert from_genotype(genotype).output_activation == "softmax"
    # several sigmoid channels (regions) are what a search trained, not a fact of the genotype
    regions = from_genotype(genotype, output_activation="sigmoid")
    assert regions.output_activation == "sigmoid" and regions.num_classes == 3
    assert USupernet(4, 3, channels=4, layout="1/0/1",
                     output_activation="sigmoid").output_activation == "sigmoid"
    assert USupernet(4, 1, channels=4, layout="1/0/1").output_activation == "sigmoid"
    with pytest.raises(ValueError, match="output_activation must be one of sigmoid, softmax"):
        from_genotype(genotype, output_activation="tanh")
