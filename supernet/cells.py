"""Cells: a DAG of 2 inputs and N intermediate nodes, searched (mixed ops) or fixed (a genotype).

Both kinds share the input handling: the older input is resampled to the newer one's scale,
each input is projected to the cell's width by a 1x1 conv, and the output is the concat of the
intermediate nodes, projected back to the cell's width by a 1x1 conv (or left as the concat).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

import ops
from ops import LayerSpec

from .genotype import CellGenotype
from .mixed_op import SEARCH_NORM, MixedOp


def edge_inputs(nodes: int) -> tuple[tuple[int, int], ...]:
    """``(node, state)`` of every edge of a cell, in edge order (the rows of its alphas).

    States are the cell's two inputs (0, 1), then its intermediate nodes (node i is state
    2 + i); node i reads every state before it, so it has 2 + i incoming edges. This is the
    one place that rule is written: cells, costs, derivation and pictures all follow it.
    """
    return tuple((node, state) for node in range(nodes) for state in range(2 + node))


def num_edges(nodes: int) -> int:
    return len(edge_inputs(nodes))


def edges_into(nodes: int) -> list[list[tuple[int, int]]]:
    """Per node, its incoming ``(edge index, source state)``, in edge order."""
    result: list[list[tuple[int, int]]] = [[] for _ in range(nodes)]
    for edge, (node, state) in enumerate(edge_inputs(nodes)):
        result[node].append((edge, state))
    return result


def edges_from(nodes: int) -> list[list[tuple[int, int]]]:
    """Per state (inputs 0, 1, then the nodes), its outgoing ``(edge index, target node)``."""
    result: list[list[tuple[int, int]]] = [[] for _ in range(nodes + 2)]
    for edge, (node, state) in enumerate(edge_inputs(nodes)):
        result[state].append((edge, node))
    return result


def edge_stride(reduction: bool, input_index: int) -> int:
    """Reduction cells halve the size on the edges leaving the two cell inputs."""
    return 2 if reduction and input_index < 2 else 1


def resample_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Max-pool down or nearest-upsample ``x`` to the spatial ``size``."""
    current = tuple(x.shape[2:])
    size = tuple(size)
    if current == size:
        return x
    if all(c >= s for c, s in zip(current, size)):
        # Python ints: a traced export (ONNX, TorchScript) records the pooling kernel as a
        # constant, which ONNX requires; the kernel is the macro's level ratio, not the input's
        # size, so the exported graph holds for every size that is a multiple of 2^levels.
        factors = [int(c) // int(s) for c, s in zip(current, size)]
        if all(c == s * f for c, s, f in zip(current, size, factors)):
            pool = F.max_pool2d if x.dim() == 4 else F.max_pool3d
            return pool(x, factors)
        pool = F.adaptive_max_pool2d if x.dim() == 4 else F.adaptive_max_pool3d
        return pool(x, size)
    return F.interpolate(x, size=size, mode="nearest")


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a branch with probability ``rate``, rescaling the kept ones."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device,
                       dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class CellBase(nn.Module):
    """Input resampling and projection, output concat and projection."""

    def __init__(self, in_channels0: int, in_channels1: int, channels: int, spatial_dims: int,
                 nodes: int, project_output: bool, norm: LayerSpec, act: LayerSpec) -> None:
        super().__init__()
        self.nodes = nodes
        self.channels = channels
        self.preprocess0 = ops.ActConvNorm(spatial_dims, in_channels0, channels, 1, 1, norm, act)
        self.preprocess1 = ops.ActConvNorm(spatial_dims, in_channels1, channels, 1, 1, norm, act)
        self.project = (ops.ActConvNorm(spatial_dims, nodes * channels, channels, 1, 1, norm, act)
                        if project_output else nn.Identity())
        self.out_channels = channels if project_output else nodes * channels

    def inputs(self, s0: torch.Tensor, s1: torch.Tensor) -> list[torch.Tensor]:
        size = s1.shape[2:]
        if s0.shape[2:] == size:
            return [self.preprocess0(s0), self.preprocess1(s1)]
        if s0.shape[2] > size[0]:  # pool first: the 1x1 conv then runs on fewer voxels
            return [self.preprocess0(resample_to(s0, size)), self.preprocess1(s1)]
        return [resample_to(self.preprocess0(s0), size), self.preprocess1(s1)]

    def output(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.project(torch.cat(states[2:], dim=1))

    @torch.no_grad()
    def load_io_from(self, cell: "CellBase") -> None:
        """Take over another cell's input and output projections (the fused and batched cells
        taking over a per-edge one's); batch counts this cell's norms do not keep are left."""
        for mine, theirs in ((self.preprocess0, cell.preprocess0), (self.preprocess1, cell.preprocess1),
                             (self.project, cell.project)):
            kept, state = mine.state_dict(), theirs.state_dict()
            # deleted from the state dict itself: it keeps the metadata (versions) the norms read
            for key in [key for key in state if key.endswith("num_batches_tracked") and key not in kept]:
                del state[key]
            mine.load_state_dict(state)


class SearchCell(CellBase):
    """All edges are mixed ops; the node sum may be weighted per edge (PC-DARTS' edge
    normalisation) and each edge output dropped as a path during training."""

    def __init__(self, in_channels0: int, in_channels1: int, channels: int, spatial_dims: int,
                 primitives: Sequence[str] = ops.SEARCH_OPS, nodes: int = 4,
                 partial_channels: int = 1, project_output: bool = True,
                 reduction: bool = False, norm: LayerSpec = SEARCH_NORM,
                 act: LayerSpec = "relu") -> None:
        super().__init__(in_channels0, in_channels1, channels, spatial_dims, nodes,
                         project_output, norm, act)
        self.reduction = reduction
        self.edges = nn.ModuleList(
            MixedOp(channels, edge_stride(reduction, state), spatial_dims, primitives,
                    partial_channels, norm, act)
            for _, state in edge_inputs(nodes)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None,
                active: Sequence[Sequence[int]] | None = None,
                drop_path_rate: float = 0.0) -> torch.Tensor:
        states = self.inputs(s0, s1)
        for incoming in edges_into(self.nodes):
            total = None
            for edge, state in incoming:
                out = self.edges[edge](states[state], weights[edge],
                                       None if active is None else active[edge])
                if edge_weights is not None:
                    out = edge_weights[edge] * out
                out = drop_path(out, drop_path_rate, self.training)
                total = out if total is None else total + out
            states.append(total)
        return self.output(states)


class FixedCell(CellBase):
    """The cell a genotype describes: each node sums its two chosen ops (affine norms, as
    retrained networks use), with drop-path on every op but the identity."""

    def __init__(self, genotype: CellGenotype, in_channels0: int, in_channels1: int,
                 channels: int, spatial_dims: int, project_output: bool = True,
                 reduction: bool = False, norm: LayerSpec = "batch",
                 act: LayerSpec = "relu") -> None:
        super().__init__(in_channels0, in_channels1, channels, spatial_dims, len(genotype),
                         project_output, norm, act)
        self.genotype = genotype
        self.node_ops = nn.ModuleList(
            nn.ModuleList(ops.build(name, channels, edge_stride(reduction, index), spatial_dims,
                                    norm, act)
                          for name, index in node)
            for node in genotype
        )
        self.node_inputs = [tuple(index for _, index in node) for node in genotype]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_path_rate: float = 0.0
                ) -> torch.Tensor:
        states = self.inputs(s0, s1)
        for node_ops, inputs in zip(self.node_ops, self.node_inputs):
            total = None
            for op, index in zip(node_ops, inputs):
                out = op(states[index])
                if not isinstance(op, nn.Identity):
                    out = drop_path(out, drop_path_rate, self.training)
                total = out if total is None else total + out
            states.append(total)
        return self.output(states)
