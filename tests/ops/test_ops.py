"""Op library: every registered op and unit in 2D and 3D, exact parameter counts, registry."""
import pytest
import torch
from torch import nn

import ops

SIZES = (8, 7)  # an even and an odd edge: stride 2 must give ceil(n / 2) for both


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", ops.list_ops())
def test_op_keeps_channels_and_scales_size(name, stride, spatial_dims):
    torch.manual_seed(0)
    op = ops.build(name, 16, stride, spatial_dims)
    for size in SIZES:
        x = torch.randn(2, 16, *(size,) * spatial_dims, requires_grad=True)
        y = op(x)
        expected = -(-size // stride)
        assert y.shape == (2, 16) + (expected,) * spatial_dims, name
    if name == "none":  # a constant: nothing flows back
        assert not y.requires_grad and not y.any()
        return
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for parameter in op.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


def test_search_space_is_the_seed_eight_in_order():
    assert ops.SEARCH_OPS == ("none", "skip_connect", "max_pool_3x3", "dil_conv_3x3",
                              "sep_conv_3x3", "ghost", "sk", "shuffle_conv_3x3")
    for name in ops.SEARCH_OPS + ops.DARTS_OPS + ("conv_3x3",):
        assert name in ops.list_ops()


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("channels", [16, 32])
def test_exact_parameter_counts(channels, spatial_dims):
    c, k = channels, 3 ** spatial_dims
    bn = 2 * c
    # dilated: depthwise k + pointwise c*c + one BN
    assert _params(ops.build("dil_conv_3x3", c, spatial_dims=spatial_dims)) == c * k + c * c + bn
    assert _params(ops.build("sep_conv_3x3", c, spatial_dims=spatial_dims)) == 2 * (
        c * k + c * c + bn)
    # ghost: 1x1 c -> c/2 + BN, depthwise on c/2 + BN
    half = c // 2
    assert _params(ops.build("ghost", c, spatial_dims=spatial_dims)) == (
        c * half + 2 * half + half * k + 2 * half)
    # shuffle: group conv c -> c/4 (4 groups) + BN, depthwise + BN, group conv c/4 -> c + BN
    quarter = c // 4
    assert _params(ops.build("shuffle_conv_3x3", c, spatial_dims=spatial_dims)) == (
        c // 4 * quarter + 2 * quarter + quarter * k + 2 * quarter + quarter // 4 * c + 2 * c)
    # selective kernel: two depthwise branches + BN, Linear c -> c/2, Linear c/2 -> 2c
    assert _params(ops.build("sk", c, spatial_dims=spatial_dims)) == (
        2 * (c * k + bn) + (c * half + half) + (half * 2 * c + 2 * c))
    # factorised reduce: two 1x1 stride-2 convs c -> c/2 and one BN over c
    assert _params(ops.build("skip_connect", c, 2, spatial_dims)) == 2 * c * half + bn
    assert _params(ops.build("skip_connect", c, 1, spatial_dims)) == 0


def test_affine_free_norm_spec_drops_norm_parameters():
    affine = _params(ops.build("dil_conv_3x3", 16))
    free = _params(ops.build("dil_conv_3x3", 16, norm=("batch", {"affine": False})))
    assert affine - free == 32


def test_factorized_reduce_uses_both_offsets():
    op = ops.build("skip_connect", 4, 2, 2, norm=None, act=None)
    x = torch.zeros(1, 4, 4, 4)
    x[..., 1::2, 1::2] = 1.0  # only odd positions set: the offset path must see them
    y = op(x)
    even, odd = y[:, :2], y[:, 2:]
    assert even.abs().sum() == 0 and odd.abs().sum() > 0


def test_zero_op_outputs_zeros_at_stride_resolution():
    y = ops.build("none", 3, 2, 3)(torch.randn(1, 3, 5, 6, 7))
    assert y.shape == (1, 3, 3, 3, 4) and not y.any()


def test_registry_errors():
    with pytest.raises(ValueError, match="sep_conv_3x3"):  # lists valid names / close matches
        ops.build("sep_conv_3", 8)
    with pytest.raises(ValueError, match="Valid"):
        ops.build("no_such_op", 8)
    with pytest.raises(ValueError, match="stride"):
        ops.build("ghost", 8, stride=3)
    with pytest.raises(ValueError, match="spatial_dims"):
        ops.build("ghost", 8, spatial_dims=1)
    with pytest.raises(ValueError, match="spatial_dims"):
        ops.build_unit("mf", 4, 16, 16)
    with pytest.raises(ValueError, match="already registered"):
        ops.register("ghost")(lambda *a, **k: None)
    with pytest.raises(ValueError, match="already registered"):
        ops.register_unit("mf")(lambda *a, **k: None)
    with pytest.raises(ValueError, match="unit"):
        ops.build_unit("mf_unit", 3, 16, 16)


def test_norm_and_activation_factories():
    assert isinstance(ops.norm_layer("batch", 3, 8), nn.BatchNorm3d)
    assert isinstance(ops.norm_layer("instance", 2, 8), nn.InstanceNorm2d)
    assert ops.norm_layer(("group", {"num_groups": 4}), 3, 8).num_groups == 4
    assert isinstance(ops.norm_layer("syncbatch", 3, 8), ops.SyncBatchNorm)
    assert isinstance(ops.norm_layer(None, 2, 8), nn.Identity)
    assert isinstance(ops.act_layer("leakyrelu"), nn.LeakyReLU)
    with pytest.raises(ValueError, match="batch"):
        ops.norm_layer("batchnorm", 2, 8)
    with pytest.raises(ValueError, match="relu"):
        ops.act_layer("rellu")
    with pytest.raises(ValueError, match="divisible"):
        ops.norm_layer(("group", {"num_groups": 3}), 2, 8)
    op = ops.build("sep_conv_3x3", 8, norm="instance", act="gelu")
    kinds = {type(m) for m in op.modules()}
    assert nn.InstanceNorm2d in kinds and nn.GELU in kinds and nn.BatchNorm2d not in kinds


def test_activations_are_not_in_place():
    # search-op inputs feed every op of a mixed edge: an in-place ReLU would corrupt them
    x = torch.randn(1, 8, 6, 6)
    keep = x.clone()
    for name in ops.SEARCH_OPS:
        ops.build(name, 8)(x)
    assert torch.equal(x, keep)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_channel_shuffle_is_an_invertible_permutation(spatial_dims):
    channels, groups = 12, 3
    x = torch.arange(channels, dtype=torch.float32).view(1, channels, *(1,) * spatial_dims)
    x = x.expand(2, channels, *(2,) * spatial_dims).contiguous()
    y = ops.channel_shuffle(x, groups)
    order = y[(0, slice(None)) + (0,) * spatial_dims].long().tolist()
    assert sorted(order) == list(range(channels))  # a permutation
    # channel g * (C / groups) + i moves to position i * groups + g
    per_group = channels // groups
    for g in range(groups):
        for i in range(per_group):
            assert order[i * groups + g] == g * per_group + i
    assert order != list(range(channels))
    assert torch.equal(ops.channel_shuffle(y, per_group), x)  # inverse
    with pytest.raises(ValueError, match="divisible"):
        ops.channel_shuffle(x, 5)
