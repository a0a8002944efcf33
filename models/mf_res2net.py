"""MF-RES2Net (seed 004): a 3D U-Net whose blocks are multi-fiber Res2 (MF-RES2) units.

The paper publishes no code; this is the reconstruction of SPEC section 2, which lands within
1% of its 3.16M parameters / 16.24 G FLOPs (conv MACs) at a 4 x 128^3 input:

======== ======= ============================================ ======
level    size    layers                                        widths
======== ======= ============================================ ======
down 1   64^3    stride-2 3x3x3 conv + 2 MF-RES2 units          in -> 32
down 2   32^3    same                                          32 -> 80
down 3   16^3    same                                          80 -> 160
down 4   8^3     same                                          160 -> 320
up 3     16^3    trilinear x2, concat [skip, up], 1 unit       480 -> 160
up 2     32^3    same                                          240 -> 80
up 1     64^3    same                                          112 -> 32
head     128^3   trilinear x2, 1x1x1 conv (no bias)            32 -> classes
======== ======= ============================================ ======

MF-RES2 unit (``ops.MultiFiberRes2Unit``): 1x1x1 in -> in/4 -> mid (the MF pair), a Res2
hierarchical split of mid into 4 with dense 3x3x1 convs, 1x1x1 mid -> out, grouped (16) 1x3x3
conv, plus the MF shortcut; every conv in a unit is pre-activation (BN -> ReLU -> conv), as in
MFNet. The stride-2 convs between levels are plain convs (no norm or activation before them):
that is the reconstruction SPEC counts, 3,138,040 parameters and 16.11 G conv MACs; a BN + ReLU
before the convs of levels 2-4 would add 544 parameters (0.02%).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .common import kaiming_initialise, pad_to_multiple
from .registry import register_model


@register_model("mf_res2net")
class MultiFiberRes2Net(nn.Module):
    """MF-RES2Net: returns softmax logits; any input size (padded to a multiple of 16)."""

    output_activation = "softmax"
    size_multiple = 16

    def __init__(self, in_channels: int = 4, num_classes: int = 4,
                 widths: Sequence[int] = (32, 80, 160, 320), units_per_level: int = 2,
                 groups: int = 16, scale: int = 4, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu", spatial_dims: int = 3) -> None:
        super().__init__()
        dims = ops.check_spatial_dims(spatial_dims)
        if len(widths) != 4:
            raise ValueError(f"MF-RES2Net has 4 levels: 4 widths, got {tuple(widths)}")
        self.num_classes = num_classes
        self.size_multiple = 2 ** len(widths)

        def unit(cin: int, cout: int) -> nn.Module:
            return ops.build_unit("mf_res2", dims, cin, cout, 1, groups=groups, scale=scale,
                                  norm=norm, act=act)

        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(nn.Sequential(
                ops.conv(dims, previous, width, 3, stride=2),
                *(unit(width, width) for _ in range(units_per_level))))
            previous = width
        self.upsample = ops.upsample(2, dims, "linear")
        self.up = nn.ModuleList(
            unit(deeper + skip, skip)
            for deeper, skip in zip(widths[:0:-1], widths[-2::-1]))
        self.head = ops.conv(dims, widths[0], num_classes, 1)
        kaiming_initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pad_to_multiple(x, self.size_multiple)
        skips = []
        for level in self.down:
            y = level(y)
            skips.append(y)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            y = block(torch.cat([skip, ops.pad_to_match(self.upsample(y), skip)], dim=1))
        return ops.pad_to_match(self.head(self.upsample(y)), x)
