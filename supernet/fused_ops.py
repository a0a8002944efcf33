"""Candidate ops evaluated for all the edges that leave one node at once.

Every edge keeps its own weights; they are stacked along the channel axis so one grouped conv
(groups = edges x ...) replaces one small conv per edge. Each module maps a source tensor
(N, C, *spatial) to (N, edges, C, *spatial) and computes exactly what ``len(edges)`` separate
ops of ``ops/`` compute (``load_from`` copies their weights in, which the tests use to prove
it). Stride 1 only: reduction cells keep the per-edge mixed ops.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec
from ops.selective_kernel import sk_hidden_width
from ops.shuffle import shuffle_widths

#: sk's and shuffle's hyper-parameters, those of ``ops.SelectiveKernel`` and ``ops.ShuffleUnit``
#: as the search builds them (every fused and batched form uses these)
SK_DILATIONS: tuple[int, ...] = (1, 2)
SK_REDUCTION = 2
SK_MIN_HIDDEN = 4
SHUFFLE_GROUPS = 4
SHUFFLE_BOTTLENECK = 4


def edge_major(x: torch.Tensor, edges: int) -> torch.Tensor:
    """(N, edges * C, *spatial) -> (N, edges, C, *spatial)."""
    return x.view(x.shape[0], edges, x.shape[1] // edges, *x.shape[2:])


def repeat_edges(x: torch.Tensor, edges: int) -> torch.Tensor:
    """(N, C, *spatial) -> (N, edges * C, *spatial): one copy of the input per edge."""
    return x.repeat(1, edges, *([1] * (x.dim() - 2)))


def copy_stacked(target: torch.Tensor, sources: Sequence[torch.Tensor]) -> None:
    """Copy ``sources`` (one per edge, edge-major) into the stacked ``target``."""
    with torch.no_grad():
        target.copy_(torch.cat([s.detach().reshape(-1, *target.shape[1:]) for s in sources]))


def _copy_norm(target: nn.Module, sources: Sequence[nn.Module]) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(target, name, None) is not None:
            copy_stacked(getattr(target, name), [getattr(s, name) for s in sources])


def init_like_linear(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    """nn.Linear's initialisation of stacked per-edge linear weights and biases."""
    bound = 1 / math.sqrt(fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.uniform_(bias, -bound, bound)


class FusedDepthwisePointwise(nn.Module):
    """(act ->) depthwise k x k (dilation) -> 1x1 -> norm, per edge: DARTS' DilConv, and one
    half of SepConv. ``x`` is edge-major (N, edges * C, ...) already."""

    def __init__(self, channels: int, edges: int, spatial_dims: int, kernel_size: int,
                 dilation: int, norm: LayerSpec) -> None:
        super().__init__()
        width = channels * edges
        self.edges = edges
        self.depthwise = ops.conv(spatial_dims, width, width, kernel_size, 1, dilation, width)
        self.pointwise = ops.conv(spatial_dims, width, width, 1, groups=edges)
        self.norm = ops.norm_layer(norm, spatial_dims, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.pointwise(self.depthwise(x)))

    def load_from(self, dilated: Sequence[nn.Module]) -> None:
        """Weights of per-edge ``ops.DilatedConv`` modules (act, depthwise, pointwise, norm)."""
        copy_stacked(self.depthwise.weight, [d[1].weight for d in dilated])
        copy_stacked(self.pointwise.weight, [d[2].weight for d in dilated])
        _copy_norm(self.norm, [d[3] for d in dilated])


class FusedDilated(nn.Module):
    def __init__(self, channels, edges, spatial_dims, kernel_size, dilation, norm, act):
        super().__init__()
        self.edges = edges
        self.body = FusedDepthwisePointwise(channels, edges, spatial_dims, kernel_size,
                                            dilation, norm)

    def forward(self, shared: "SharedInputs") -> torch.Tensor:
        return edge_major(self.body(shared.activated_repeated()), self.edges)

    def load_from(self, modules):
        self.body.load_from(modules)


class FusedSeparable(nn.Module):
    def __init__(self, channels, edges, spatial_dims, kernel_size, dilation, norm, act):
        super().__init__()
        self.edges = edges
        self.first = FusedDepthwisePointwise(channels, edges, spatial_dims, kernel_size, 1, norm)
        self.act = ops.act_layer(act)
        self.second = FusedDepthwisePointwise(channels, edges, spatial_dims, kernel_size, 1,
                                              norm)

    def forward(self, shared: "SharedInputs") -> torch.Tensor:
        return edge_major(self.second(self.act(self.first(shared.activated_repeated()))),
                          self.edges)

    def load_from(self, modules):
        self.first.load_from([m[0] for m in modules])
        self.second.load_from([m[1] for m in modules])


class FusedGhost(nn.Module):
    """Primary 1x1 convs of all edges as one dense conv (C -> edges x C/2), cheap depthwise
    convs as one grouped conv, halves interleaved per edge."""

    def __init__(self, channels, edges, spatial_dims, kernel_size, dilation, norm, act):
        super().__init__()
        self.edges, self.channels = edges, channels
        primary = math.ceil(channels / 2)
        width = primary * edges
        self.primary = nn.Sequential(ops.conv(spatial_dims, channels, width, 1),
                                     ops.norm_layer(norm, spatial_dims, width), ops.act_layer(act))
        self.cheap = nn.Sequential(ops.conv(spatial_dims, width, width, 3, groups=width),
                                   ops.norm_layer(norm, spatial_dims, width))

    def forward(self, shared: "SharedInputs") -> torch.Tensor:
        primary = self.primary(shared.x)
        both = torch.cat([edge_major(primary, self.edges),
                          edge_major(self.cheap(primary), self.edges)], dim=2)
        return both if both.shape[2] == self.channels else both[:, :, : self.channels]

    def load_from(self, modules):
        copy_stacked(self.primary[0].weight, [m.primary[0].weight for m in modules])
        _copy_norm(self.primary[1], [m.primary[1] for m in modules])
        copy_stacked(self.cheap[0].weight, [m.cheap[0].weight for m in modules])
        _copy_norm(self.cheap[1], [m.cheap[1] for m in modules])


class FusedSelectiveKernel(nn.Module):
    """Depthwise branches of all edges as grouped convs; the per-edge attention MLPs as batched
    matrix products."""

    def __init__(self, channels, edges, spatial_dims, kernel_size, dilation, norm, act,
                 dilations=SK_DILATIONS, reduction: int = SK_REDUCTION,
                 min_hidden: int = SK_MIN_HIDDEN):
        super().__init__()
        width = channels * edges
        self.edges, self.channels = edges, channels
        self.branches = nn.ModuleList(
            nn.Sequential(ops.conv(spatial_dims, width, width, 3, 1, d, width),
                          ops.norm_layer(norm, spatial_dims, width), ops.act_layer(act))
            for d in dilations)
        hidden = sk_hidden_width(channels, reduction, min_hidden)
        self.squeeze_weight = nn.Parameter(torch.empty(edges, hidden, channels))
        self.squeeze_bias = nn.Parameter(torch.empty(edges, hidden))
        self.expand_weight = nn.Parameter(torch.empty(edges, len(dilations) * channels, hidden))
        self.expand_bias = nn.Parameter(torch.empty(edges, len(dilations) * channels))
        self.act = ops.act_layer(act)
        init_like_linear(self.squeeze_weight, self.squeeze_bias, channels)
        init_like_linear(self.expand_weight, self.expand_bias, hidden)

    def forward(self, shared: "SharedInputs") -> torch.Tensor:
        repeated = shared.repeated()
        branches = [edge_major(branch(repeated), self.edges) for branch in self.branches]
        pooled = sum(branches).mean(dim=tuple(range(3, repeated.dim() + 1)))  # (N, edges, C)
        hidden = self.act(torch.einsum("nec,ehc->neh", pooled, self.squeeze_weight)
                          + self.squeeze_bias)
        attention = torch.einsum("neh,eoh->neo", hidden, self.expand_weight) + self.expand_bias
        attention = attention.view(*attention.shape[:2], len(branches), self.channels)
        attention = attention.softmax(dim=2)
        shape = (*attention.shape[:2], self.channels) + (1,) * (repeated.dim() - 2)
        out = branches[0] * attention[:, :, 0].reshape(shape)
        for index in range(1, len(branches)):
            out = out + branches[index] * attention[:, :, index].reshape(shape)
        return out

    def load_from(self, modules):
        for index, branch in enumerate(self.branches):
            copy_stacked(branch[0].weight, [m.branches[index][0].weight for m in modules])
            _copy_norm(branch[1], [m.branches[index][1] for m in modules])
        copy_stacked(self.squeeze_weight, [m.squeeze[1].weight for m in modules])
        copy_stacked(self.squeeze_bias, [m.squeeze[1].bias for m in modules])
        copy_stacked(self.expand_weight, [m.expand.weight for m in modules])
        copy_stacked(self.expand_bias, [m.expand.bias for m in modules])


class FusedShuffle(nn.Module):
    """ShuffleNet units of all edges: the first group conv of every edge in one conv with the
    same groups (outputs regrouped edge-major), the rest as edges x groups grouped convs."""

    def __init__(self, channels, edges, spatial_dims, kernel_size, dilation, norm, act,
                 groups: int = SHUFFLE_GROUPS, bottleneck: int = SHUFFLE_BOTTLENECK):
        super().__init__()
        mid, groups = shuffle_widths(channels, channels, groups, bottleneck)
        self.edges, self.groups, self.mid, self.channels = edges, groups, mid, channels
        self.squeeze = ops.conv(spatial_dims, channels, edges * mid, 1, groups=groups)
        self.squeeze_norm = nn.Sequential(ops.norm_layer(norm, spatial_dims, edges * mid),
                                          ops.act_layer(act))
        self.spatial = nn.Sequential(
            ops.conv(spatial_dims, edges * mid, edges * mid, 3, groups=edges * mid),
            ops.norm_layer(norm, spatial_dims, edges * mid))
        self.expand = nn.Sequential(
            ops.conv(spatial_dims, edges * mid, edges * channels, 1, groups=edges * groups),
            ops.norm_layer(norm, spatial_dims, edges * channels))

    def _regroup(self, x: torch.Tensor, first: int, second: int) -> torch.Tensor:
        """View channels as (first, second, rest) and swap the first two axes."""
        batch, spatial = x.shape[0], x.shape[2:]
        x = x.view(batch, first, second, -1, *spatial).transpose(1, 2)
        return x.reshape(batch, -1, *spatial)

    def forward(self, shared: "SharedInputs") -> torch.Tensor:
        squeezed = self.squeeze(shared.activated)  # (N, groups x edges x mid/groups)
        squeezed = self._regroup(squeezed, self.groups, self.edges)  # edge-major
        squeezed = self.squeeze_norm(squeezed)
        # channel shuffle inside each edge: (edges, groups, mid/groups) -> (edges, mid/g, g)
        batch, spatial = squeezed.shape[0], squeezed.shape[2:]
        per_group = self.mid // self.groups
        shuffled = squeezed.view(batch, self.edges, self.groups, per_group, *spatial)
        shuffled = shuffled.transpose(2, 3).reshape(batch, -1, *spatial)
        return edge_major(self.expand(self.spatial(shuffled)), self.edges)

    def load_from(self, modules):
        per_group = self.mid // self.groups
        weights = [m.squeeze[1].weight.view(self.groups, per_group, *m.squeeze[1].weight.shape[1:])
                   for m in modules]
        with torch.no_grad():
            stacked = torch.stack(weights, dim=1)  # (groups, edges, mid/groups, ...)
            self.squeeze.weight.copy_(stacked.reshape(self.squeeze.weight.shape))
        _copy_norm(self.squeeze_norm[0], [m.squeeze[2] for m in modules])
        copy_stacked(self.spatial[0].weight, [m.spatial[0].weight for m in modules])
        _copy_norm(self.spatial[1], [m.spatial[1] for m in modules])
        copy_stacked(self.expand[0].weight, [m.expand[0].weight for m in modules])
        _copy_norm(self.expand[1], [m.expand[1] for m in modules])


class SharedInputs:
    """The source tensor and what several fused ops derive from it, each computed once."""

    def __init__(self, x: torch.Tensor, edges: int, act: nn.Module) -> None:
        self.x, self.edges, self._act = x, edges, act
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def activated(self) -> torch.Tensor:
        if "activated" not in self._cache:
            self._cache["activated"] = self._act(self.x)
        return self._cache["activated"]

    def activated_repeated(self) -> torch.Tensor:
        if "activated_repeated" not in self._cache:
            self._cache["activated_repeated"] = repeat_edges(self.activated, self.edges)
        return self._cache["activated_repeated"]

    def repeated(self) -> torch.Tensor:
        if "repeated" not in self._cache:
            self._cache["repeated"] = repeat_edges(self.x, self.edges)
        return self._cache["repeated"]


#: primitive -> (fused class, kernel size, dilation)
FUSED_OPS = {
    "dil_conv_3x3": (FusedDilated, 3, 2),
    "dil_conv_5x5": (FusedDilated, 5, 2),
    "sep_conv_3x3": (FusedSeparable, 3, 1),
    "sep_conv_5x5": (FusedSeparable, 5, 1),
    "ghost": (FusedGhost, 1, 1),
    "sk": (FusedSelectiveKernel, 3, 1),
    "shuffle_conv_3x3": (FusedShuffle, 3, 1),
}


def fusable(primitives: Sequence[str]) -> bool:
    """Every primitive is fused, or parameter-free (its output is the same for every edge of a
    source, so it is computed once and shared)."""
    return all(name in FUSED_OPS or name in ops.PARAMETER_FREE_OPS for name in primitives)
