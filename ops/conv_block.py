"""The plain U-Net block: a stack of conv -> norm -> activation layers (3D U-Net, Çiçek 2016)."""
from __future__ import annotations

import torch
from torch import nn

from .layers import ConvNormAct, IntOrTuple, LayerSpec, check_spatial_dims, max_pool
from .registry import register_unit


@register_unit("conv_block")
class ConvBlock(nn.Module):
    """``num_convs`` conv -> norm -> act layers: in -> mid, mid -> mid, ..., mid -> out.

    ``mid_channels`` (default ``out_channels``) lets the first conv stop half-way, as in the
    3D U-Net's encoder (32 -> 64 at the first level: "double the channels before pooling").
    Stride 2 is a 2x2 max-pool in front (rounding odd sizes up), the U-Net's downsampling.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 mid_channels: int | None = None, num_convs: int = 2,
                 kernel_size: IntOrTuple = 3, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu") -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        if num_convs < 1:
            raise ValueError(f"conv block needs at least one conv, got num_convs={num_convs}")
        mid = out_channels if mid_channels is None or num_convs == 1 else mid_channels
        widths = [in_channels] + [mid] * (num_convs - 1) + [out_channels]
        self.pool = max_pool(dims, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        self.convs = nn.Sequential(*(
            ConvNormAct(dims, cin, cout, kernel_size, norm=norm, act=act)
            for cin, cout in zip(widths[:-1], widths[1:])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(self.pool(x))
