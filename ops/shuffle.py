"""Channel shuffle and the ShuffleNet group-conv unit (the ``shuffle_conv_3x3`` search op)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .layers import LayerSpec, act_layer, check_spatial_dims, conv, norm_layer
from .registry import register, register_unit


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet); any number of spatial axes.

    Channel ``g * (C / groups) + i`` moves to ``i * groups + g``: a permutation whose inverse
    is a shuffle with ``C / groups`` groups.
    """
    batch, channels = x.shape[:2]
    if channels % groups:
        raise ValueError(f"channel_shuffle: {channels} channels not divisible by {groups} groups")
    spatial = x.shape[2:]
    return (x.reshape(batch, groups, channels // groups, *spatial).transpose(1, 2)
            .reshape(batch, channels, *spatial))


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def shuffle_widths(in_channels: int, out_channels: int, groups: int, bottleneck: int) -> tuple[int, int]:
    """(squeezed width, groups) of a :class:`ShuffleUnit`: ``groups`` shrunk to the largest
    divisor of the widths; the fused and batched search ops lay out their weights by the same."""
    mid = max(in_channels // bottleneck, 1)
    return mid, math.gcd(math.gcd(groups, mid), math.gcd(in_channels, out_channels))


@register_unit("shuffle")
class ShuffleUnit(nn.Module):
    """act -> 1x1 group conv (in -> in / bottleneck) + norm + act -> channel shuffle ->
    3x3 depthwise conv (stride) + norm -> 1x1 group conv (-> out) + norm.

    ``groups`` shrinks to the largest divisor of both widths when a narrow layer (partial
    channels, small demo widths) cannot be split into 4 groups.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 4, bottleneck: int = 4, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        mid, groups = shuffle_widths(in_channels, out_channels, groups, bottleneck)
        self.groups = groups
        self.squeeze = nn.Sequential(
            act_layer(act),
            conv(dims, in_channels, mid, 1, groups=groups),
            norm_layer(norm, dims, mid),
            act_layer(act),
        )
        self.shuffle = ChannelShuffle(groups)
        self.spatial = nn.Sequential(
            conv(dims, mid, mid, 3, stride, groups=mid),
            norm_layer(norm, dims, mid),
        )
        self.expand = nn.Sequential(
            conv(dims, mid, out_channels, 1, groups=groups),
            norm_layer(norm, dims, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.spatial(self.shuffle(self.squeeze(x))))


@register("shuffle_conv_3x3")
def _shuffle_conv(channels, stride, spatial_dims, norm, act):
    return ShuffleUnit(spatial_dims, channels, channels, stride, norm=norm, act=act)
