"""A search cell that evaluates the edges leaving each node together (same function as
:class:`~supernet.cells.SearchCell`, far fewer kernel launches).

A cell's state s (its 2 inputs, then its nodes) feeds every later node. Instead of one mixed op
per edge, one :class:`FusedSource` per state runs each candidate op once for all of the state's
outgoing edges (grouped convs over stacked per-edge weights, see ``fused_ops``), shares the
activation and the pooling between edges, and returns one mixed output per edge.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import ops
from ops import LayerSpec

from .cells import CellBase, SearchCell, drop_path, edges_from
from .fused_ops import FUSED_OPS, SharedInputs
from .mixed_op import SEARCH_NORM


class FusedSource(nn.Module):
    """All candidate ops for the ``edges`` edges that leave one state."""

    def __init__(self, channels: int, edges: int, spatial_dims: int, primitives: Sequence[str],
                 partial_channels: int, norm: LayerSpec, act: LayerSpec) -> None:
        super().__init__()
        self.edges = edges
        self.primitives = tuple(primitives)
        self.partial_channels = partial_channels
        self.op_channels = channels // partial_channels
        self.act = ops.act_layer(act)
        self.fused = nn.ModuleDict()
        self.shared_ops = nn.ModuleDict()
        for name in self.primitives:
            if name in FUSED_OPS:
                cls, kernel, dilation = FUSED_OPS[name]
                self.fused[name] = cls(self.op_channels, edges, spatial_dims, kernel, dilation,
                                       norm, act)
            elif name != "none":
                self.shared_ops[name] = ops.build(name, self.op_channels, 1, spatial_dims, norm,
                                                  act)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: Sequence[int]) -> torch.Tensor:
        """``weights``: (edges, ops); ``active``: indices of ops some edge still runs.
        Returns the mixed outputs (N, edges, C, *spatial)."""
        if self.partial_channels > 1:
            x, bypass = x[:, : self.op_channels], x[:, self.op_channels:]
        shared = SharedInputs(x, self.edges, self.act)
        broadcast = (1, self.edges, 1) + (1,) * (x.dim() - 2)
        out = None
        for index in active:
            name = self.primitives[index]
            if name in self.fused:
                term = self.fused[name](shared)
            else:
                term = self.shared_ops[name](x).unsqueeze(1)
            term = weights[:, index].reshape(broadcast) * term
            out = term if out is None else out + term
        if out is None:
            out = x.new_zeros((x.shape[0], self.edges) + tuple(x.shape[1:]))
        if self.partial_channels > 1:
            expanded = bypass.unsqueeze(1).expand(-1, self.edges, *bypass.shape[1:])
            out = torch.cat([out, expanded], dim=2)
            # the per-edge channel shuffle of PC-DARTS (K groups)
            batch, spatial = out.shape[0], out.shape[3:]
            out = out.view(batch, self.edges, self.partial_channels, -1, *spatial)
            out = out.transpose(2, 3).reshape(batch, self.edges, -1, *spatial)
        return out

    def load_from(self, mixed_ops: Sequence[nn.Module]) -> None:
        """Copy the weights of the per-edge ``MixedOp``s this source replaces."""
        for index, name in enumerate(self.primitives):
            if name in self.fused:
                self.fused[name].load_from([m.ops[index] for m in mixed_ops])


class FusedSearchCell(CellBase):
    """Drop-in replacement for :class:`SearchCell` (same arguments, same function) for cells
    without reduction. Its parameters are laid out per source, so its state dict differs."""

    def __init__(self, in_channels0: int, in_channels1: int, channels: int, spatial_dims: int,
                 primitives: Sequence[str] = ops.SEARCH_OPS, nodes: int = 4,
                 partial_channels: int = 1, project_output: bool = True,
                 norm: LayerSpec = SEARCH_NORM, act: LayerSpec = "relu") -> None:
        super().__init__(in_channels0, in_channels1, channels, spatial_dims, nodes,
                         project_output, norm, act)
        self.primitives = tuple(primitives)
        self.edges_of = edges_from(nodes)
        self.sources = nn.ModuleList(
            FusedSource(channels, len(edges), spatial_dims, primitives, partial_channels, norm,
                        act)
            for edges in self.edges_of[:-1])  # the last node feeds no edge
        for s, edges in enumerate(self.edges_of):
            self.register_buffer(f"edge_index_{s}", torch.tensor([e for e, _ in edges],
                                                                 dtype=torch.long),
                                 persistent=False)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None,
                active: Sequence[Sequence[int]] | None = None,
                drop_path_rate: float = 0.0) -> torch.Tensor:
        states = self.inputs(s0, s1)
        incoming: list[list[torch.Tensor]] = [[] for _ in range(self.nodes)]
        for node in range(self.nodes + 1):
            # states 0 and 1 are both ready before node 0; later states one at a time
            for s in ((0, 1) if node == 0 else (node + 1,)):
                self._run_source(s, states[s], weights, edge_weights, active, drop_path_rate,
                                 incoming)
            if node < self.nodes:
                parts = incoming[node]
                total = parts[0]
                for part in parts[1:]:
                    total = total + part
                states.append(total)
        return self.output(states)

    def _run_source(self, s, state, weights, edge_weights, active, drop_path_rate, incoming):
        edges = self.edges_of[s]
        if not edges:
            return
        index = getattr(self, f"edge_index_{s}")
        if active is None:
            runnable = [i for i, n in enumerate(self.primitives) if n != "none"]
        else:
            runnable = sorted({i for e, _ in edges for i in active[e]})
        out = self.sources[s](state, weights.index_select(0, index), runnable)
        if edge_weights is not None:
            out = out * edge_weights.index_select(0, index).reshape(
                (1, len(edges)) + (1,) * (out.dim() - 2))
        if drop_path_rate > 0 and self.training:
            out = drop_path(out.flatten(0, 1), drop_path_rate, True).view_as(out)
        for position, (_, node) in enumerate(edges):
            incoming[node].append(out[:, position])

    @torch.no_grad()
    def load_from(self, cell: SearchCell) -> "FusedSearchCell":
        """Take over an unfused cell's weights (for equivalence checks and conversions)."""
        self.load_io_from(cell)
        for s, edges in enumerate(self.edges_of[:-1]):
            self.sources[s].load_from([cell.edges[e] for e, _ in edges])
        return self
