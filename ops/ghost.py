"""Ghost module (GhostNet): half the output from a cheap depthwise conv of the other half."""
from __future__ import annotations

import math

import torch
from torch import nn

from .layers import LayerSpec, act_layer, check_spatial_dims, conv, norm_layer
from .registry import register, register_unit


@register_unit("ghost")
class GhostModule(nn.Module):
    """Primary conv (in -> ceil(out / ratio)) + norm + act, then a cheap depthwise conv of those
    features + norm, both concatenated and cut to ``out_channels``.

    With ``stride`` 2 a strided depthwise 3x3 conv + norm runs first, the way GhostNet's
    bottleneck downsamples, because a strided 1x1 primary conv would drop 3 of 4 pixels.
    The cheap branch has no activation (SPEC; ``cheap_act`` adds one as in GhostNet's
    default module).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 ratio: int = 2, kernel_size: int = 1, cheap_kernel_size: int = 3,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu",
                 cheap_act: LayerSpec = None) -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        self.out_channels = out_channels
        primary = math.ceil(out_channels / ratio)
        cheap = primary * (ratio - 1)
        self.downsample = nn.Identity() if stride == 1 else nn.Sequential(
            conv(dims, in_channels, in_channels, 3, stride, groups=in_channels),
            norm_layer(norm, dims, in_channels),
        )
        self.primary = nn.Sequential(
            conv(dims, in_channels, primary, kernel_size),
            norm_layer(norm, dims, primary),
            act_layer(act),
        )
        self.cheap = nn.Sequential(
            conv(dims, primary, cheap, cheap_kernel_size, groups=primary),
            norm_layer(norm, dims, cheap),
            act_layer(cheap_act),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(self.downsample(x))
        out = torch.cat([primary, self.cheap(primary)], dim=1)
        return out if out.shape[1] == self.out_channels else out[:, : self.out_channels]


@register("ghost")
def _ghost(channels, stride, spatial_dims, norm, act):
    return GhostModule(spatial_dims, channels, channels, stride, norm=norm, act=act)
