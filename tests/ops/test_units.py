"""Building units of the hand-designed networks: shapes, gradients, exact counts."""
import pytest
import torch

import ops


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", ops.list_units())
@pytest.mark.parametrize("in_channels,out_channels", [(32, 32), (32, 64)])
def test_unit_shapes_and_gradients(name, stride, spatial_dims, in_channels, out_channels):
    torch.manual_seed(0)
    unit = ops.build_unit(name, spatial_dims, in_channels, out_channels, stride)
    x = torch.randn(2, in_channels, *(6,) * spatial_dims, requires_grad=True)
    y = unit(x)
    assert y.shape == (2, out_channels) + (6 // stride,) * spatial_dims
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for n, parameter in unit.named_parameters():
        assert parameter.grad is not None, n


def _norm_act_conv_params(cin, cout, kernel, groups=1):
    return 2 * cin + cin // groups * cout * kernel


def test_multi_fiber_unit_matches_hand_count():
    # DMFNet's MFunit, 3D, 32 -> 128 at stride 2 (its first encoder unit), groups 16
    cin, cout = 32, 128
    expected = (
        _norm_act_conv_params(cin, cin // 4, 1)
        + _norm_act_conv_params(cin // 4, cin, 1)  # mid = min(cin, cout)
        + _norm_act_conv_params(cin, cout, 27, 16)
        + _norm_act_conv_params(cout, cout, 9, 16)  # 3x3x1
        + _norm_act_conv_params(cin, cout, 8)  # 2x2x2 stride-2 shortcut
    )
    assert _params(ops.build_unit("mf", 3, cin, cout, 2)) == expected
    # the MFS unit only adds a parameter-free shuffle
    assert _params(ops.build_unit("mfs", 3, cin, cout, 2)) == expected
    # DMF: two more dilated branches and 3 learned scalars
    dmf = ops.build_unit("dmf", 3, cin, cout, 2)
    assert _params(dmf) == expected + 2 * _norm_act_conv_params(cin, cout, 27, 16) + 3


def test_dmf_weights_scale_their_branches():
    torch.manual_seed(0)
    unit = ops.build_unit("dmf", 3, 32, 32).eval()
    x = torch.randn(1, 32, 6, 6, 6)
    with torch.no_grad():
        base = unit(x)
        unit.grouped.weights.data[:] = 0.0
        zeroed = unit(x)
    # with every dilation weighted 0 only the planar conv of a zero tensor (BN shift) remains
    assert not torch.allclose(base, zeroed)
    assert torch.equal(unit.grouped.weights.data, torch.zeros(3))


def test_mfs_unit_shuffles_between_grouped_convs():
    unit = ops.build_unit("mfs", 3, 32, 32)
    assert isinstance(unit.shuffle, ops.ChannelShuffle) and unit.shuffle.groups == 16
    assert not isinstance(ops.build_unit("mf", 3, 32, 32).shuffle, ops.ChannelShuffle)


def test_res2_split_receptive_fields_grow():
    # y_1 = x_1 passes unchanged, later splits see wider neighbourhoods (3, 5, 7)
    split = ops.HierarchicalSplitConv(2, 8, scale=4, kernel_size=3, norm=None, act=None)
    x = torch.zeros(1, 8, 15, 15, requires_grad=True)
    y = split(x)
    reach = []
    for part in range(4):
        grad, = torch.autograd.grad(y[0, 2 * part:2 * part + 2, 7, 7].sum(), x,
                                    retain_graph=True)
        rows = grad[0].abs().sum(dim=(0, 2)).nonzero().flatten()
        reach.append(int(rows.max() - rows.min() + 1))
    assert reach == [1, 3, 5, 7]


def test_resnet_gn_block_uses_group_norm_and_identity():
    block = ops.build_unit("resnet_gn", 3, 32, 32)
    assert any(isinstance(m, torch.nn.GroupNorm) and m.num_groups == 8 for m in block.modules())
    assert isinstance(block.shortcut, torch.nn.Identity)
    assert _params(block) == 2 * (2 * 32 + 32 * 32 * 27)


def test_ghost_and_sk_units_change_width():
    x = torch.randn(2, 8, 5, 5, 5)
    assert ops.build_unit("ghost", 3, 8, 12)(x).shape == (2, 12, 5, 5, 5)
    assert ops.build_unit("sk", 3, 8, 12)(x).shape == (2, 12, 5, 5, 5)


def test_conv_block_counts_and_pools():
    # the 3D U-Net's first level 4 -> 32 -> 64: two conv + BN layers, ReLU after each
    block = ops.build_unit("conv_block", 3, 4, 64, mid_channels=32)
    assert _params(block) == (4 * 32 * 27 + 2 * 32) + (32 * 64 * 27 + 2 * 64)
    assert sum(isinstance(m, torch.nn.ReLU) for m in block.modules()) == 2
    single = ops.build_unit("conv_block", 3, 8, 8, num_convs=1, mid_channels=4)
    assert _params(single) == 8 * 8 * 27 + 2 * 8  # mid only matters between convs
    # stride 2 is a max-pool in front, rounding odd sizes up like the stride-2 convs
    pooled = ops.build_unit("conv_block", 2, 1, 1, 2, norm=None, act=None)
    assert isinstance(pooled.pool, torch.nn.MaxPool2d)
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 6, 6] = 1.0  # only in the last odd row and column
    with torch.no_grad():
        for layer in pooled.convs:  # identity convs
            layer[0].weight.zero_()
            layer[0].weight[0, 0, 1, 1] = 1.0
        assert pooled(x).shape == (1, 1, 4, 4) and pooled(x)[0, 0, 3, 3] == 1.0
    with pytest.raises(ValueError, match="at least one conv"):
        ops.build_unit("conv_block", 3, 4, 4, num_convs=0)
