"""Selective-kernel module (SKNet): attention-weighted sum of differently dilated branches."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import LayerSpec, act_layer, check_spatial_dims, conv, global_avg_pool, norm_layer
from .registry import register, register_unit


def sk_hidden_width(channels: int, reduction: int, min_hidden: int) -> int:
    """The squeezed width of a :class:`SelectiveKernel`'s attention (``channels // reduction``,
    at least ``min(min_hidden, channels)``); the fused and batched search ops use the same."""
    return max(channels // reduction, min(min_hidden, channels))


@register_unit("sk")
class SelectiveKernel(nn.Module):
    """Branches of 3x3 convs with the given dilations (each + norm + act) are summed, pooled
    globally, squeezed to ``channels // reduction`` and expanded to one softmax weight per
    branch and channel; the output is the weighted sum of the branches.

    ``groups=None`` makes the branches depthwise (the search op, SPEC); the unit form may use
    dense or grouped branches. ``in_channels`` may differ from ``out_channels``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, stride: int = 1,
                 dilations: Sequence[int] = (1, 2), reduction: int = 2, groups: int | None = None,
                 norm: LayerSpec = "batch", act: LayerSpec = "relu", min_hidden: int = 4) -> None:
        super().__init__()
        dims = check_spatial_dims(spatial_dims)
        if groups is None:
            groups = in_channels if in_channels == out_channels else 1
        self.num_branches = len(dilations)
        self.out_channels = out_channels
        self.branches = nn.ModuleList(
            nn.Sequential(
                conv(dims, in_channels, out_channels, 3, stride, dilation, groups),
                norm_layer(norm, dims, out_channels),
                act_layer(act),
            )
            for dilation in dilations
        )
        hidden = sk_hidden_width(out_channels, reduction, min_hidden)
        self.pool = global_avg_pool(dims)
        self.squeeze = nn.Sequential(nn.Flatten(), nn.Linear(out_channels, hidden), act_layer(act))
        self.expand = nn.Linear(hidden, self.num_branches * out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.stack([branch(x) for branch in self.branches], dim=1)
        attention = self.expand(self.squeeze(self.pool(features.sum(dim=1))))
        attention = attention.view(x.shape[0], self.num_branches, self.out_channels)
        attention = attention.softmax(dim=1).view(*attention.shape, *(1,) * (x.dim() - 2))
        return (features * attention).sum(dim=1)


@register("sk")
def _sk(channels, stride, spatial_dims, norm, act):
    return SelectiveKernel(spatial_dims, channels, channels, stride, norm=norm, act=act)
