"""The plain 3D U-Net baseline (Çiçek et al. 2016), as seed 000's comparison table counts it.

Encoder: 4 levels of two 3x3x3 conv -> BN -> ReLU layers, the first level 4 -> 32 -> 64 and each
later one entered by a 2x2x2 max-pool and doubling the channels before the next pool
(64 -> 64 -> 128, 128 -> 128 -> 256, 256 -> 256 -> 512). Decoder: per level an x2 upsampling of
the deeper map, concat [skip, up], conv layers to the skip's width; a 1x1x1 conv to the classes.

Defaults reproduce the peer figure of seed 000's table (3D U-Net, 16.21M / 1669.53 G): trilinear
upsampling instead of Çiçek's 2x2x2 transposed convs, and a single 3x3x3 conv at the last
decoder level (``decoder_convs=(2, 2, 1)``) give 16,209,996 parameters and 1,667.5 G conv MACs
at 4 x 128^3. ``upsample="transposed", decoder_convs=(2, 2, 2)`` is Çiçek's paper exactly
(19.08M, 1,959.6 G).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .common import pad_to_multiple
from .registry import register_model

#: Çiçek's widths per level: (first conv, second conv).
CICEK_WIDTHS = ((32, 64), (64, 128), (128, 256), (256, 512))


@register_model("unet3d")
class UNet3D(nn.Module):
    """3D U-Net returning softmax logits; any input size (padded to a multiple of 8)."""

    output_activation = "softmax"

    def __init__(self, in_channels: int = 4, num_classes: int = 4,
                 widths: Sequence[Sequence[int]] = CICEK_WIDTHS,
                 decoder_convs: Sequence[int] = (2, 2, 1), upsample: str = "linear",
                 norm: LayerSpec = "batch", act: LayerSpec = "relu",
                 spatial_dims: int = 3) -> None:
        super().__init__()
        dims = ops.check_spatial_dims(spatial_dims)
        if len(decoder_convs) != len(widths) - 1:
            raise ValueError(f"one decoder level per encoder level but the deepest: "
                             f"decoder_convs needs {len(widths) - 1} entries, got {decoder_convs}")
        if upsample not in ("linear", "transposed"):
            raise ValueError(f"upsample must be 'linear' or 'transposed', got {upsample!r}")
        self.num_classes = num_classes
        self.size_multiple = 2 ** (len(widths) - 1)
        outs = [out for _, out in widths]
        self.down = nn.ModuleList()
        previous = in_channels
        for level, (mid, out) in enumerate(widths):
            self.down.append(ops.build_unit("conv_block", dims, previous, out, 1 if level == 0
                                            else 2, mid_channels=mid, norm=norm, act=act))
            previous = out
        # decoder levels from the deepest up: the deeper width is upsampled onto the skip's
        self.upsamplers = nn.ModuleList(
            ops.upsample(2, dims, "linear") if upsample == "linear" else
            ops.conv_transpose(dims, deeper, deeper, 2, 2)
            for deeper in outs[:0:-1])
        self.up = nn.ModuleList(
            ops.build_unit("conv_block", dims, deeper + skip, skip, num_convs=convs, norm=norm,
                           act=act)
            for deeper, skip, convs in zip(outs[:0:-1], outs[-2::-1], decoder_convs))
        self.head = ops.conv(dims, outs[0], num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pad_to_multiple(x, self.size_multiple)
        skips = []
        for level in self.down:
            y = level(y)
            skips.append(y)
        for upsample, block, skip in zip(self.upsamplers, self.up, reversed(skips[:-1])):
            y = block(torch.cat([skip, ops.pad_to_match(upsample(y), skip)], dim=1))
        return ops.pad_to_match(self.head(y), x)



#: The 2D baseline of seed 002's tables: Ronneberger's U-Net, 5 levels from 32 channels.
UNET_2D_WIDTHS = ((32, 32), (64, 64), (128, 128), (256, 256), (512, 512))


def plain_unet(in_channels: int = 3, num_classes: int = 1, spatial_dims: int = 2) -> UNet3D:
    """The plain U-Net that complexity reports compare derived networks with (not in the
    registry of 3D brain-tumour networks): two convs per level, 5 levels from 32 channels,
    transposed-conv upsampling. At 3 x 256^2 it has 9.24M params / 15.0 GMACs, the closest
    classic configuration to the 9.81M / 20.17 G seed 002 lists for its (unspecified) U-Net."""
    return UNet3D(in_channels, num_classes, UNET_2D_WIDTHS, decoder_convs=(2, 2, 2, 2),
                  upsample="transposed", spatial_dims=spatial_dims)
