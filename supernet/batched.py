"""A search cell with fewer, larger kernels than the fused one: the same function of the same
alphas, built on :mod:`supernet.fused_ops` (each op still runs once for all the edges leaving a
state, on grouped convolutions over the edges' stacked weights), and further:

- the cell's two inputs (states 0 and 1: both ready before node 0, same shape, ``nodes`` edges
  each) form one group, so every op runs once for their 2 x ``nodes`` edges (states 0 and 1 are
  told apart by convolution groups, never mixed);
- the last batch norm of every op that ends in one (sep, dil, shuffle) runs once over their
  stacked outputs (batch norm is per channel: one norm over the concatenated channels is the
  ops' separate norms), and so do the norm and activation of sk's two branches;
- shuffle: its squeeze norm, activation, depthwise conv and norm act per channel, so they run in
  the squeeze conv's own channel order and one permutation does the regrouping by edge and the
  channel shuffle together;
- the mixed sum: one stacked multiply-and-sum for the normed ops and one fused multiply-add per
  other op, instead of a multiply and an add per op, the edge weights (PC-DARTS) folded into the
  op weights; partial channels' concat and channel shuffle are one stack.

Batch norm only (the search's norm); stride 1 only (U cells), like the fused cell. The outputs
and the gradients of inputs, weights and alphas equal the per-edge cell's within float rounding
(``load_from`` takes over its weights; tests/supernet/test_batched.py). Drop-path draws one mask
per sample and edge of each group, so its random masks (not their distribution) differ from the
per-edge cell's, as the fused cell's do.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import ops
from ops import LayerSpec

from .batched_group import BatchedGroup
from .cells import CellBase, SearchCell, drop_path, edges_from
from .mixed_op import SEARCH_NORM


class BatchedSearchCell(CellBase):
    """Drop-in replacement for :class:`~supernet.cells.SearchCell` and
    :class:`~supernet.fused.FusedSearchCell` (same arguments, same function) for cells without
    reduction: one :class:`BatchedGroup` for the cell's two inputs, one per later state that
    feeds a node. Its parameters are laid out per group, so its state dict differs.

    Its batch norms keep no count of the batches they saw: with a fixed momentum (the search's
    0.1) nothing reads it, and its increment is one kernel per norm and forward (a tenth of the
    step's kernels)."""

    def __init__(self, in_channels0: int, in_channels1: int, channels: int, spatial_dims: int,
                 primitives: Sequence[str] = ops.SEARCH_OPS, nodes: int = 4,
                 partial_channels: int = 1, project_output: bool = True,
                 norm: LayerSpec = SEARCH_NORM, act: LayerSpec = "relu") -> None:
        super().__init__(in_channels0, in_channels1, channels, spatial_dims, nodes,
                         project_output, norm, act)
        self.primitives = tuple(primitives)
        edges_of = edges_from(nodes)
        # states read together: the two inputs, then each node that feeds a later node; after
        # group g every edge into node g is computed
        self.group_states = [(0, 1)] + [(s,) for s in range(2, nodes + 1)]
        self.group_edges = [[edge for s in states for edge, _ in edges_of[s]]
                            for states in self.group_states]
        self.group_targets = [[node for s in states for _, node in edges_of[s]]
                              for states in self.group_states]
        self.groups = nn.ModuleList(
            BatchedGroup(channels, len(states), len(edges_of[states[0]]), spatial_dims,
                         primitives, partial_channels, norm, act, edges)
            for states, edges in zip(self.group_states, self.group_edges))
        self._runnable = tuple(i for i, n in enumerate(self.primitives) if n != "none")
        for module in self.modules():
            if isinstance(module, _BatchNorm) and module.momentum is not None:
                module.num_batches_tracked = None

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None = None,
                active: Sequence[Sequence[int]] | None = None,
                drop_path_rate: float = 0.0) -> torch.Tensor:
        states = self.inputs(s0, s1)
        incoming: list[list[torch.Tensor]] = [[] for _ in range(self.nodes)]
        for node, (group, group_states) in enumerate(zip(self.groups, self.group_states)):
            runnable = self._runnable if active is None else \
                tuple(sorted({i for e in group.edge_index for i in active[e]}))
            out = group([states[s] for s in group_states], weights, edge_weights, runnable)
            if drop_path_rate > 0 and self.training:
                out = drop_path(out.flatten(0, 1), drop_path_rate, True).view_as(out)
            for target, part in zip(self.group_targets[node], out.unbind(1)):
                incoming[target].append(part)
            parts = incoming[node]
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            states.append(total)
        return self.output(states)

    @torch.no_grad()
    def load_from(self, cell: SearchCell) -> "BatchedSearchCell":
        """Take over a per-edge cell's weights (for equivalence checks and conversions)."""
        self.load_io_from(cell)
        for group, edges in zip(self.groups, self.group_edges):
            group.load_from([cell.edges[e] for e in edges])
        return self
