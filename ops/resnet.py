"""Pre-activation ResNet block with group norm (Myronenko's BraTS 2018 encoder/decoder block)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import LayerSpec, NormActConv, check_spatial_dims, conv
from .registry import register_unit


@register_unit("resnet_gn")
class ResNetGroupNormBlock(nn.Module):
    """norm -> act -> 3x3 conv -> norm -> act -> 3x3 conv, plus the input (a 1x1 conv shortcut
    when the width or stride changes). Group norm with 8 groups by default, as in seed 001."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 norm: LayerSpec = ("group", {"num_groups": 8}), act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        self.first = NormActConv(dims, in_channels, out_channels, 3, stride, norm=norm, act=act)
        self.second = NormActConv(dims, out_channels, out_channels, 3, norm=norm, act=act)
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else conv(dims, in_channels, out_channels, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x)) + self.shortcut(x)
