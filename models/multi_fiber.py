"""MFNet, DMFNet and MFS-Net: one multi-fiber U-shaped skeleton, three choices of unit.

Layout of DMFNet's public code (``China-LiuXiaopeng/BraTS-DMFNet``, ``models/DMFNet_16x.py``),
widths for ``base_channels=32, channels=128`` at a 128^3 input:

====== ======== ================================== ========
block  size     widths                             strides
====== ======== ================================== ========
e1     64^3     in -> 32, plain 3x3x3 conv, no norm  2
e2     32^3     32 -> 128 -> 128 -> 128 (3 units)  2, 1, 1
e3     16^3     128 -> 256 -> 256 -> 256           2, 1, 1
e4     8^3      256 -> 384 -> 384 -> 256           2, 1, 1
d1     16^3     concat(e3, up) 512 -> 256          1
d2     32^3     concat(e2, up) 384 -> 128          1
d3     64^3     concat(e1, up) 160 -> 32           1
head   128^3    trilinear x2, 1x1x1 conv 32 -> classes (no bias)
====== ======== ================================== ========

The networks differ only in the unit of each of the six unit blocks (e2, e3, e4, d1, d2, d3):
MFNet uses ``mf`` everywhere, DMFNet ``dmf`` in e2 and e3 (weighted dilations 1, 2, 3), MFS-Net
(seed 000, ``easthorse/brain-tumor-segmentation-based-on-group-convolution``) ``mfs`` (a channel
shuffle between the grouped convs) everywhere but d3.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .common import kaiming_initialise, pad_to_multiple
from .registry import register_model

#: Unit of each unit block, in the order e2, e3, e4, d1, d2, d3.
FIBER_LAYOUTS: dict[str, tuple[str, ...]] = {
    "mfnet": ("mf", "mf", "mf", "mf", "mf", "mf"),
    "dmfnet": ("dmf", "dmf", "mf", "mf", "mf", "mf"),
    "mfsnet": ("mfs", "mfs", "mfs", "mfs", "mfs", "mf"),
}


class MultiFiberNet(nn.Module):
    """The multi-fiber encoder-decoder; ``units`` names the ``ops`` unit of e2, e3, e4, d1, d2, d3.

    Returns logits (``num_classes`` channels, softmax over them gives the class probabilities).
    Any input size works: it is zero-padded to a multiple of 16 and the logits cropped back.
    """

    output_activation = "softmax"
    #: the encoder halves the size four times
    size_multiple = 16

    def __init__(self, in_channels: int = 4, num_classes: int = 4,
                 units: Sequence[str] = FIBER_LAYOUTS["mfnet"], base_channels: int = 32,
                 channels: int = 128, groups: int = 16, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu", spatial_dims: int = 3) -> None:
        super().__init__()
        if len(units) != 6:
            raise ValueError(f"units names the unit of e2, e3, e4, d1, d2, d3: 6 names, "
                             f"got {len(units)}: {tuple(units)}")
        dims = ops.check_spatial_dims(spatial_dims)
        self.num_classes = num_classes
        self.units = tuple(units)
        n, c = base_channels, channels

        def unit(index: int, cin: int, cout: int, stride: int = 1) -> nn.Module:
            return ops.build_unit(units[index], dims, cin, cout, stride, groups=groups,
                                  norm=norm, act=act)

        self.encoder1 = ops.conv(dims, in_channels, n, 3, stride=2)
        self.encoder2 = nn.Sequential(unit(0, n, c, 2), unit(0, c, c), unit(0, c, c))
        self.encoder3 = nn.Sequential(unit(1, c, 2 * c, 2), unit(1, 2 * c, 2 * c),
                                      unit(1, 2 * c, 2 * c))
        self.encoder4 = nn.Sequential(unit(2, 2 * c, 3 * c, 2), unit(2, 3 * c, 3 * c),
                                      unit(2, 3 * c, 2 * c))
        self.upsample = ops.upsample(2, dims, "linear")
        self.decoder1 = unit(3, 2 * c + 2 * c, 2 * c)
        self.decoder2 = unit(4, 2 * c + c, c)
        self.decoder3 = unit(5, c + n, n)
        self.head = ops.conv(dims, n, num_classes, 1)
        kaiming_initialise(self)

    def _up_and_concat(self, skip: torch.Tensor, deeper: torch.Tensor) -> torch.Tensor:
        # DMFNet's order: [skip, upsampled]
        return torch.cat([skip, ops.pad_to_match(self.upsample(deeper), skip)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_to_multiple(x, self.size_multiple)
        x1 = self.encoder1(padded)
        x2 = self.encoder2(x1)
        x3 = self.encoder3(x2)
        x4 = self.encoder4(x3)
        y = self.decoder1(self._up_and_concat(x3, x4))
        y = self.decoder2(self._up_and_concat(x2, y))
        y = self.decoder3(self._up_and_concat(x1, y))
        logits = self.head(self.upsample(y))
        return ops.pad_to_match(logits, x)


def _fiber_builder(name: str, summary: str):
    def builder(in_channels: int = 4, num_classes: int = 4, **kwargs) -> MultiFiberNet:
        return MultiFiberNet(in_channels, num_classes, FIBER_LAYOUTS[name], **kwargs)

    builder.__name__ = name
    builder.__doc__ = f"{summary} (:class:`MultiFiberNet` with units {FIBER_LAYOUTS[name]})."
    return register_model(name)(builder)


mfnet = _fiber_builder("mfnet", "MFNet: multi-fiber units throughout (DMFNet paper's baseline)")
dmfnet = _fiber_builder("dmfnet", "DMFNet (Chen et al. 2019): dilated multi-fiber units in e2, e3")
mfsnet = _fiber_builder("mfsnet", "MFS-Net (seed 000): shuffled multi-fiber units but in d3")
