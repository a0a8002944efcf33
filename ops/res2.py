"""Res2 (Res2Net) hierarchical split convs, and the MF-RES2 unit of MF-RES2Net (seed 004)."""
from __future__ import annotations

import torch
from torch import nn

from .fiber import multi_fiber_shortcut, planar_kernel
from .layers import IntOrTuple, LayerSpec, NormActConv, check_spatial_dims
from .registry import register_unit


class HierarchicalSplitConv(nn.Module):
    """Split the channels into ``scale`` parts x_1..x_s; y_1 = x_1, y_2 = K_2(x_2),
    y_i = K_i(x_i + y_(i-1)); concatenate. Each K_i is a pre-activation conv, so y_i sees a
    receptive field growing with i (3, 5, 7 for 3x3 kernels) at a quarter of a dense conv's cost.
    """

    def __init__(self, spatial_dims: int, channels: int, scale: int = 4,
                 kernel_size: IntOrTuple = 3, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu") -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(f"Res2: {channels} channels not divisible by scale {scale}")
        self.width = channels // scale
        self.convs = nn.ModuleList(
            NormActConv(spatial_dims, self.width, self.width, kernel_size, norm=norm, act=act)
            for _ in range(scale - 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.width, dim=1)
        outputs = [parts[0]]
        previous = None
        for part, conv in zip(parts[1:], self.convs):
            previous = conv(part if previous is None else part + previous)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


@register_unit("res2")
class Res2Unit(nn.Module):
    """Res2Net bottleneck, pre-activation: 1x1 in -> mid, hierarchical split 3x3 convs,
    1x1 mid -> out (the stride), plus a shortcut."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 scale: int = 4, norm: LayerSpec = "batch", act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        mid = max(min(in_channels, out_channels) // scale, 1) * scale
        self.reduce = NormActConv(dims, in_channels, mid, 1, norm=norm, act=act)
        self.split = HierarchicalSplitConv(dims, mid, scale, 3, norm, act)
        self.expand = NormActConv(dims, mid, out_channels, 1, stride=stride, norm=norm, act=act,
                                  padding=0)
        self.shortcut = multi_fiber_shortcut(dims, in_channels, out_channels, stride, norm, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.split(self.reduce(x))) + self.shortcut(x)


@register_unit("mf_res2")
class MultiFiberRes2Unit(nn.Module):
    """MF-RES2 unit (seed 004, as reconstructed in SPEC): the MF 1x1 pair (in -> in/4 -> mid),
    Res2 hierarchical dense 3x3x1 convs over 4 splits, 1x1 mid -> out, a grouped 1x3x3 conv
    (the stride, if any), plus the MF shortcut."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 groups: int = 16, scale: int = 4, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        if in_channels < 4:
            raise ValueError(f"MF-RES2 unit needs at least 4 input channels, got {in_channels}")
        mid = min(in_channels, out_channels)
        self.reduce = NormActConv(dims, in_channels, in_channels // 4, 1, norm=norm, act=act)
        self.expand = NormActConv(dims, in_channels // 4, mid, 1, norm=norm, act=act)
        self.split = HierarchicalSplitConv(dims, mid, scale, planar_kernel(dims), norm, act)
        self.fuse = NormActConv(dims, mid, out_channels, 1, norm=norm, act=act)
        cross_plane = (1,) + (3,) * (dims - 1)
        self.cross = NormActConv(dims, out_channels, out_channels, cross_plane, stride, 1, groups,
                                 norm, act)
        self.shortcut = multi_fiber_shortcut(dims, in_channels, out_channels, stride, norm, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.cross(self.fuse(self.split(self.expand(self.reduce(x)))))
        return out + self.shortcut(x)
