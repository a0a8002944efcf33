"""The mixed op of one edge: a softmax(alpha)-weighted sum over the candidate ops."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

#: DARTS' search cells normalise without affine parameters: the alphas carry the scale.
SEARCH_NORM: LayerSpec = ("batch", {"affine": False})


class MixedOp(nn.Module):
    """sum_o w_o * o(x) over ``primitives``.

    ``none`` is never run (its term is zero), nor is an op whose weight is exactly zero (pruned
    ops: their alpha is masked to -inf). With ``partial_channels`` K > 1 (PC-DARTS) only the
    first C/K channels go through the ops; the rest bypass them (max-pooled at stride 2) and a
    channel shuffle with K groups mixes the two parts, cutting memory and time by about K.
    """

    def __init__(self, channels: int, stride: int, spatial_dims: int,
                 primitives: Sequence[str] = ops.SEARCH_OPS, partial_channels: int = 1,
                 norm: LayerSpec = SEARCH_NORM, act: LayerSpec = "relu") -> None:
        super().__init__()
        if channels % partial_channels:
            raise ValueError(f"{channels} channels not divisible by partial_channels="
                             f"{partial_channels}")
        self.stride = stride
        self.spatial_dims = spatial_dims
        self.partial_channels = partial_channels
        self.op_channels = channels // partial_channels
        self.primitives = tuple(primitives)
        self.ops = nn.ModuleList(
            ops.build(name, self.op_channels, stride, spatial_dims, norm, act)
            for name in self.primitives
        )
        self.runnable = tuple(i for i, name in enumerate(self.primitives) if name != "none")
        self.bypass_pool = (ops.max_pool(spatial_dims, 2, 2, 0)
                            if partial_channels > 1 and stride == 2 else nn.Identity())

    def active_indices(self, weights: torch.Tensor) -> tuple[int, ...]:
        """Ops worth running: not ``none`` and with a weight that is not exactly zero.

        Reading the weights synchronises a GPU; supernets pass the indices they track instead.
        """
        nonzero = (weights.detach() != 0).tolist()
        return tuple(i for i in self.runnable if nonzero[i])

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: Sequence[int] | None = None) -> torch.Tensor:
        if active is None:
            active = self.active_indices(weights)
        if self.partial_channels > 1:
            x, bypass = x[:, : self.op_channels], x[:, self.op_channels:]
        out = None
        for index in active:
            term = weights[index] * self.ops[index](x)
            out = term if out is None else out + term
        if out is None:  # every op pruned or none: the edge carries zeros
            out = self.ops[self.primitives.index("none")](x) if "none" in self.primitives else \
                ops.Zero(self.stride, self.spatial_dims)(x)
        if self.partial_channels > 1:
            out = ops.channel_shuffle(torch.cat([out, self.bypass_pool(bypass)], dim=1),
                                      self.partial_channels)
        return out
