"""DARTS' primitive ops, dimension-agnostic: zero, identity, pools, plain/dilated/separable convs.

Each keeps the channel count; stride 2 halves every spatial size (rounding up).
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import LayerSpec, act_layer, avg_pool, check_spatial_dims, conv, max_pool, norm_layer
from .registry import register


class Zero(nn.Module):
    """The 'no connection' op: zeros at the output resolution."""

    def __init__(self, stride: int = 1, spatial_dims: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return torch.zeros_like(x)
        index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * self.spatial_dims
        return torch.zeros_like(x[index])


class FactorizedReduce(nn.Module):
    """Stride-2 identity substitute (DARTS): two offset 1x1 stride-2 convs, concatenated.

    The second path reads the input shifted by one voxel on every axis so the two halves see
    complementary positions. The input is padded by one at the end first, so both paths give
    ceil(n / 2) also for odd sizes (DARTS' version fails there).
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 2,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        self.spatial_dims = dims
        first = out_channels // 2
        self.act = act_layer(act)
        self.conv_even = conv(dims, in_channels, first, 1, stride=2)
        self.conv_odd = conv(dims, in_channels, out_channels - first, 1, stride=2)
        self.norm = norm_layer(norm, dims, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = nn.functional.pad(x, (0, 1) * self.spatial_dims)
        shifted = shifted[(slice(None), slice(None)) + (slice(1, None),) * self.spatial_dims]
        return self.norm(torch.cat([self.conv_even(x), self.conv_odd(shifted)], dim=1))


class ActConvNorm(nn.Sequential):
    """DARTS' ReLUConvBN: activation -> conv -> norm."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(
            act_layer(act),
            conv(spatial_dims, in_channels, out_channels, kernel_size, stride),
            norm_layer(norm, spatial_dims, out_channels),
        )


class DilatedConv(nn.Sequential):
    """Activation -> depthwise k x k conv with dilation -> 1x1 conv -> norm (DARTS' DilConv)."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 2, norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(
            act_layer(act),
            conv(spatial_dims, channels, channels, kernel_size, stride, dilation, groups=channels),
            conv(spatial_dims, channels, channels, 1),
            norm_layer(norm, spatial_dims, channels),
        )


class SeparableConv(nn.Sequential):
    """DARTS' SepConv: the undilated DilatedConv sequence twice, stride on the first only."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 3, stride: int = 1,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(
            DilatedConv(spatial_dims, channels, kernel_size, stride, 1, norm, act),
            DilatedConv(spatial_dims, channels, kernel_size, 1, 1, norm, act),
        )


@register("none")
def _none(channels, stride, spatial_dims, norm, act):
    return Zero(stride, spatial_dims)


@register("skip_connect")
def _skip(channels, stride, spatial_dims, norm, act):
    if stride == 1:
        return nn.Identity()
    return FactorizedReduce(channels, channels, spatial_dims, norm, act)


@register("max_pool_3x3")
def _max_pool(channels, stride, spatial_dims, norm, act):
    return max_pool(spatial_dims, 3, stride, padding=1)


@register("avg_pool_3x3")
def _avg_pool(channels, stride, spatial_dims, norm, act):
    return avg_pool(spatial_dims, 3, stride, padding=1, count_include_pad=False)


@register("conv_3x3")
def _conv_3x3(channels, stride, spatial_dims, norm, act):
    return ActConvNorm(spatial_dims, channels, channels, 3, stride, norm, act)


@register("dil_conv_3x3")
def _dil_conv_3x3(channels, stride, spatial_dims, norm, act):
    return DilatedConv(spatial_dims, channels, 3, stride, 2, norm, act)


@register("dil_conv_5x5")
def _dil_conv_5x5(channels, stride, spatial_dims, norm, act):
    return DilatedConv(spatial_dims, channels, 5, stride, 2, norm, act)


@register("sep_conv_3x3")
def _sep_conv_3x3(channels, stride, spatial_dims, norm, act):
    return SeparableConv(spatial_dims, channels, 3, stride, norm, act)


@register("sep_conv_5x5")
def _sep_conv_5x5(channels, stride, spatial_dims, norm, act):
    return SeparableConv(spatial_dims, channels, 5, stride, norm, act)
