"""Multi-fiber units: MF (MFNet), MFS (MF + channel shuffle, MFS-Net) and DMF (DMFNet).

All convs are pre-activation (norm -> act -> conv, no bias), as in DMFNet's public code.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import LayerSpec, NormActConv, check_spatial_dims
from .registry import register_unit
from .shuffle import ChannelShuffle


def planar_kernel(spatial_dims: int) -> tuple[int, ...]:
    """The in-plane kernel of the units' second grouped conv: 3x3x1 in 3D, 3x1 in 2D."""
    return (3,) * (spatial_dims - 1) + (1,)


def multi_fiber_shortcut(spatial_dims: int, in_channels: int, out_channels: int, stride: int,
                         norm: LayerSpec, act: LayerSpec) -> nn.Module:
    """Identity; a 1x1 conv when only the width changes; a 2x2 stride-2 conv when downsampling."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if stride == 1:
        return NormActConv(spatial_dims, in_channels, out_channels, 1, norm=norm, act=act)
    return NormActConv(spatial_dims, in_channels, out_channels, 2, stride=2, norm=norm, act=act,
                       padding=0)


class WeightedDilations(nn.Module):
    """Parallel pre-activation 3x3 grouped convs with different dilations, summed with learned
    scalar weights initialised to 1 (DMFNet's DMF core)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int,
                 groups: int, dilations: Sequence[int], norm: LayerSpec, act: LayerSpec) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            NormActConv(spatial_dims, in_channels, out_channels, 3, stride, dilation, groups,
                        norm, act)
            for dilation in dilations
        )
        self.weights = nn.Parameter(torch.ones(len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.weights[0] * self.branches[0](x)
        for weight, branch in zip(self.weights[1:], self.branches[1:]):
            out = out + weight * branch(x)
        return out


@register_unit("mf")
class MultiFiberUnit(nn.Module):
    """MF unit: 1x1 in -> in/4, 1x1 -> min(in, out), grouped 3x3 conv -> out (the stride),
    grouped 3x3x1 conv, plus a shortcut; no activation after the sum.

    ``dilations`` with more than one rate gives the DMF unit; ``shuffle`` inserts a channel
    shuffle between the two grouped convs (MFS unit) so the groups exchange information.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 16, dilations: Sequence[int] = (1,), shuffle: bool = False,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        if in_channels < 4:
            raise ValueError(f"MF unit needs at least 4 input channels, got {in_channels}")
        mid = min(in_channels, out_channels)
        self.reduce = NormActConv(dims, in_channels, in_channels // 4, 1, norm=norm, act=act)
        self.expand = NormActConv(dims, in_channels // 4, mid, 1, norm=norm, act=act)
        if len(dilations) == 1:
            self.grouped = NormActConv(dims, mid, out_channels, 3, stride, dilations[0], groups,
                                       norm, act)
        else:
            self.grouped = WeightedDilations(dims, mid, out_channels, stride, groups, dilations,
                                             norm, act)
        self.shuffle = ChannelShuffle(groups) if shuffle else nn.Identity()
        self.planar = NormActConv(dims, out_channels, out_channels, planar_kernel(dims), 1, 1,
                                  groups, norm, act)
        self.shortcut = multi_fiber_shortcut(dims, in_channels, out_channels, stride, norm, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.planar(self.shuffle(self.grouped(self.expand(self.reduce(x)))))
        return out + self.shortcut(x)


@register_unit("mfs")
class MultiFiberShuffleUnit(MultiFiberUnit):
    """MFS unit (seed 000): the MF unit with a channel shuffle between its grouped convs."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 16, norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(spatial_dims, in_channels, out_channels, stride, groups, (1,), True,
                         norm, act)


@register_unit("dmf")
class DilatedMultiFiberUnit(MultiFiberUnit):
    """DMF unit (DMFNet): the MF unit with weighted parallel dilations 1, 2, 3."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 16, dilations: Sequence[int] = (1, 2, 3),
                 norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__(spatial_dims, in_channels, out_channels, stride, groups, dilations,
                         False, norm, act)
